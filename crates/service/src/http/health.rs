//! `GET /api/health/health_check` and `GET /api/cameras`.

use axum::extract::State;
use axum::response::Response;
use protocol::api::Health;

use super::AppState;
use super::error::ok;

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
    let degraded = database.as_ref().is_some_and(|d| !d.up);
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
    })
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
