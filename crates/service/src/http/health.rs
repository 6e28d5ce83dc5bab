//! `GET /api/health/health_check` (liveness and a summary, `DEGRADED` while a dependency is
//! down), `GET /api/health/ready` (readiness for orchestrators: 503 until streaming mode's Kafka,
//! Redis and topics are there) and `GET /api/cameras`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use protocol::api::{Health, Readiness};

use super::AppState;
use super::error::{error, ok};

/// `UP` or `DOWN`.
fn up(is_up: bool) -> String {
    if is_up { "UP" } else { "DOWN" }.to_string()
}

/// Liveness and a summary, as SPEC section 3.
pub async fn health_check(State(state): State<AppState>) -> Response {
    let database = state.database.as_ref().map(|w| {
        let s = w.stats();
        protocol::api::DatabaseHealth {
            backend: state
                .measure
                .as_ref()
                .map_or("", |m| m.store.backend_name())
                .to_string(),
            up: s.up,
            pending_rows: s.pending_rows,
            rows_dropped: s.rows_dropped,
            last_error: (!s.up).then_some(s.last_error).flatten(),
        }
    });
    let mut dependencies = BTreeMap::new();
    if let Some(d) = &state.dependencies {
        dependencies.insert("kafka".to_string(), up(d.kafka_up()));
        dependencies.insert("redis".to_string(), up(d.redis_up()));
    }
    if let Some(d) = &database {
        dependencies.insert("database".to_string(), up(d.up));
    }
    let degraded = dependencies.values().any(|v| v == "DOWN");
    ok(Health {
        status: if degraded { "DEGRADED" } else { "UP" }.into(),
        service: "algo".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        active_streams: state.hub.active(),
        llm_enabled: state.llm_enabled,
        mode: state.mode.into(),
        ws_messages_dropped: state.stats.ws_dropped.get(),
        database,
        dependencies,
    })
}

/// Ready when the model is loaded (always, once this answers) and, in streaming mode, Kafka
/// and Redis answer and the topics exist; 503 in the envelope, naming what is missing, until
/// then. The measurement database does not gate it: its rows wait in a buffer.
pub async fn ready(State(state): State<AppState>) -> Response {
    let waiting: Vec<String> = state
        .dependencies
        .as_ref()
        .map(|d| d.not_ready().into_iter().map(str::to_string).collect())
        .unwrap_or_default();
    if waiting.is_empty() {
        return ok(Readiness {
            ready: true,
            waiting_for: waiting,
        });
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("not ready: {}", waiting.join(", ")),
    )
}

/// The running cameras with state and counters (and the LLM's, when it is on).
pub async fn cameras(State(state): State<AppState>) -> Response {
    let mut cameras = state.hub.cameras();
    if let Some(llm) = &state.llm {
        for camera in &mut cameras {
            camera.llm = llm.counters(camera.camera_id);
        }
    }
    ok(cameras)
}
