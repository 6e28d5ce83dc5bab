//! `GET /api/health/health_check` and `GET /api/cameras`.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use super::error::ok;

/// Liveness and a summary, as SPEC section 3.
pub async fn health_check(State(state): State<AppState>) -> Response {
    ok(json!({
        "status": "UP",
        "service": "algo",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "activeStreams": state.hub.active(),
        "llmEnabled": state.llm_enabled,
        "mode": state.mode,
        // Messages not delivered to slow WebSocket clients since start (beyond SPEC 3).
        "wsMessagesDropped": state.stats.ws_dropped.get(),
    }))
}

/// The running cameras with state and counters.
pub async fn cameras(State(state): State<AppState>) -> Response {
    ok(json!(state.hub.cameras()))
}
