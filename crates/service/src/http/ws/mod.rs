//! One WebSocket session on `/ws`. A writer task drains a bounded outbound queue to the socket;
//! the reader loop parses each message and answers through that queue, waiting for room (a
//! client's own answers are never dropped; one that reads nothing for [`REPLY_TIMEOUT`] is
//! dropped); every watched camera has a forwarder task copying its broadcast into the queue. A
//! slow client loses camera messages (counted), never slows a camera or other clients. The
//! server pings every heartbeat interval and drops a client silent for three. Before the upgrade
//! the token (when configured) and the connection limits are checked; during the session the
//! message rate: messages beyond it are dropped with an `error` (`rate_limited`, at most once a
//! second), and a client that keeps flooding is dropped. `check_camera` probes run beside the
//! session, at most [`MAX_CHECKS_PER_SESSION`] per session and [`MAX_CHECKS`] on the service,
//! and end with the session. The writer gives each message [`REPLY_TIMEOUT`] to reach the
//! socket; a client that takes longer is dropped, and after the session a stuck writer gets
//! [`WRITER_GRACE`] before it is aborted.
//!
//! Here: the upgrade and the session's start and end. `session`: the reader loop and the
//! answers; `writer`: the outbound queue to the socket; `forwarder`: a watched camera's
//! broadcast into the queue; `check`: `check_camera` probes.

mod check;
mod forwarder;
mod session;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::AppState;
use super::auth;
use super::error::error;
use super::limits::{ConnectionPermit, Refusal, client_address};
use protocol::client::MAX_MESSAGE_BYTES;
use protocol::{ErrorCode, ProtocolError, ServerMessage};
use session::Session;
use writer::Outbound;

/// Outbound messages queued per client before new ones are dropped. A `detection_result` with
/// its frame is 50-300 KB, so this bounds a stuck client to a few MB beside the kernel's socket
/// buffers; a client watching four cameras at 1.8 s has several seconds of slack.
pub const OUTBOUND_CAPACITY: usize = 16;

/// How long a reply to the client's own message may wait for room in its queue; a client that
/// reads nothing for this long is dropped.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// `check_camera` probes one session may run at once; more are refused with `rate_limited`.
pub const MAX_CHECKS_PER_SESSION: usize = 4;

/// `check_camera` probes the whole service may run at once (each opens a connection and
/// decodes a picture).
pub const MAX_CHECKS: usize = 16;

/// How long the writer may still flush a closing session's queue before it is aborted.
pub const WRITER_GRACE: Duration = Duration::from_secs(5);

/// The `stream_stopped` reason every watched camera gets when the service shuts down.
pub const SHUTDOWN_REASON: &str = "Service shutting down";

/// The JSON text of a server message: the one place messages become text.
pub fn message_text(message: &ServerMessage) -> String {
    // Plain structs with string keys and no custom serialisers: this cannot fail.
    serde_json::to_string(message).expect("server messages always serialise")
}

/// Messages refused for the rate within one second after which the client counts as flooding
/// and is dropped, as a multiple of its per-second allowance.
pub const FLOOD_FACTOR: u32 = 10;

/// Upgrades to a WebSocket session: checks the token (when one is configured) and the
/// connection limits first.
pub async fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // A plain HTTP request gets the envelope too, not the framework's text.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return error(
                rejection.status(),
                "this is a WebSocket endpoint: send a WebSocket upgrade request",
            );
        }
    };
    if !auth::allowed(&state, &headers, query.as_deref()) {
        state.stats.auth_failure("ws");
        // Upgrade anyway so that the client reads why, then close.
        return ws.on_upgrade(refuse_unauthorized);
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = client_address(peer.ip(), &forwarded, &state.trusted_proxies);
    let permit = match state.connections.admit(client) {
        Ok(permit) => permit,
        Err(refusal) => {
            state.stats.limit_hit(refusal.as_str());
            let (status, msg) = match refusal {
                Refusal::Total => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many WebSocket connections (server.max_ws_connections)",
                ),
                Refusal::PerAddress => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many WebSocket connections from this address \
                     (server.max_ws_connections_per_ip)",
                ),
            };
            return error(status, msg);
        }
    };
    // Accept up to 16 MiB at the transport so that frames over our 1 MiB limit get an `error`
    // answer instead of a dropped connection.
    ws.max_message_size(16 * MAX_MESSAGE_BYTES)
        .max_frame_size(16 * MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state, permit))
}

/// Tells a client without the right token why, and closes.
async fn refuse_unauthorized(mut socket: WebSocket) {
    let e = ProtocolError::new(
        ErrorCode::Unauthorized,
        "send the token: Authorization: Bearer <token>, or ?token=<token>",
    );
    let _ = socket
        .send(Message::Text(message_text(&e.to_message()).into()))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: "unauthorized".into(),
        })))
        .await;
}

/// Runs one session: the writer drains the outbound queue while the session reads the client;
/// when the session ends, the writer gets [`WRITER_GRACE`] to flush.
async fn session(socket: WebSocket, state: AppState, _permit: ConnectionPermit) {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::channel::<Outbound>(OUTBOUND_CAPACITY);
    let stats = Arc::clone(&state.stats);
    stats.ws_connections.inc();
    stats.ws_clients.inc();
    let writer = writer::spawn(conn, sink, out_rx, Arc::clone(&stats), &state.tasks);
    let mut s = Session::new(conn, state, out);
    s.send(&ServerMessage::connection_ack());
    s.flush().await;
    tracing::debug!(conn, "websocket connected");
    s.run(&mut stream).await;
    s.end();
    writer::finish(writer).await;
    stats.ws_clients.dec();
    tracing::debug!(conn, "websocket closed");
}
