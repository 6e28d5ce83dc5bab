//! One WebSocket session on `/ws`. A writer task drains a bounded outbound queue to the socket;
//! the reader loop parses each message and answers through that queue, waiting for room (a
//! client's own answers are never dropped; one that reads nothing for [`REPLY_TIMEOUT`] is
//! dropped); every watched camera has a forwarder task copying its broadcast into the queue. A
//! slow client loses camera messages (counted), never slows a camera or other clients. The server pings every heartbeat interval and drops a
//! client silent for three. Before the upgrade the token (when configured) and the connection
//! limits are checked; during the session the message rate: messages beyond it are dropped with
//! an `error` (`rate_limited`, at most once a second), and a client that keeps flooding is
//! dropped. `check_camera` probes run beside the session, at most [`MAX_CHECKS_PER_SESSION`] per
//! session and [`MAX_CHECKS`] on the service, and end with the session. The writer gives each
//! message [`REPLY_TIMEOUT`] to reach the socket; a client that takes longer is dropped, and
//! after the session a stuck writer gets [`WRITER_GRACE`] before it is aborted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::auth;
use super::error::error;
use super::limits::{ConnectionPermit, MessageRate, Refusal, client_address};
use camera::broadcast::Broadcast;
use camera::check::probe;
use camera::hub::{ConnId, Subscription};
use protocol::client::{MAX_MESSAGE_BYTES, parse};
use protocol::server::{CameraState, CameraStatus};
use protocol::{CameraId, ClientMessage, ErrorCode, ProtocolError, ServerMessage};

use crate::metrics::Metrics;

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

/// The JSON text of a camera's message, made once for all its watchers.
fn event_text(event: &Broadcast) -> Arc<str> {
    Arc::clone(
        event
            .text
            .get_or_init(|| message_text(&event.message).into()),
    )
}

/// One message on its way to a client, with the arrival time of the frame it describes.
#[derive(Debug)]
struct Outbound {
    msg: Message,
    captured: Option<Instant>,
}

impl Outbound {
    fn text(text: impl Into<axum::extract::ws::Utf8Bytes>) -> Self {
        Self {
            msg: Message::Text(text.into()),
            captured: None,
        }
    }
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

struct Session {
    conn: ConnId,
    state: AppState,
    out: mpsc::Sender<Outbound>,
    forwarders: HashMap<CameraId, CancellationToken>,
    rate: MessageRate,
    /// Messages refused for the rate in the current one-second window, and when it began.
    refused: (u32, Instant),
    /// When the client was last told it is rate limited (at most once a second).
    warned: Option<Instant>,
    /// Replies not yet handed to the writer.
    replies: Vec<String>,
    /// Cameras to forward once the replies before them are out (so that a camera's
    /// `camera_status` answer comes before its first broadcast message).
    to_forward: Vec<(broadcast::Receiver<Broadcast>, CancellationToken)>,
    /// This session's running `check_camera` probes.
    checks: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the session ends: its probes and forwarders (child tokens) stop.
    ended: CancellationToken,
}

impl Session {
    /// Queues a reply; [`Session::flush`] hands it to the writer.
    fn send(&mut self, message: &ServerMessage) {
        self.replies.push(message_text(message));
    }

    fn send_error(&mut self, e: &ProtocolError) {
        self.send(&e.to_message());
    }

    /// Hands the queued replies to the writer, waiting for room: a client's own answers are
    /// never dropped (camera messages are, for slow clients). False when the client has not
    /// read for [`REPLY_TIMEOUT`]: it is stuck and the session ends.
    async fn flush(&mut self) -> bool {
        for text in std::mem::take(&mut self.replies) {
            let sent = tokio::time::timeout(REPLY_TIMEOUT, self.out.send(Outbound::text(text)));
            if !matches!(sent.await, Ok(Ok(()))) {
                self.state.stats.ws_dropped.inc();
                return false;
            }
        }
        for (events, token) in std::mem::take(&mut self.to_forward) {
            tokio::spawn(forward(
                events,
                self.out.clone(),
                token,
                Arc::clone(&self.state.stats),
            ));
        }
        true
    }

    /// Starts forwarding a camera's messages, replacing an earlier forwarder of the same camera.
    fn watch(&mut self, sub: Subscription) {
        self.send(&sub.status);
        let token = self.ended.child_token();
        if let Some(old) = self.forwarders.insert(sub.camera_id, token.clone()) {
            old.cancel();
        }
        self.to_forward.push((sub.events, token));
    }

    /// Stops watching a camera: `None` when this client was not watching it, else whether the
    /// camera stopped (this client was its last watcher).
    fn unwatch(&mut self, camera_id: CameraId) -> Option<bool> {
        if let Some(token) = self.forwarders.remove(&camera_id) {
            token.cancel();
        }
        self.state.hub.leave(self.conn, camera_id)
    }

    /// Applies the message rate: false when the message is dropped. Tells the client at most
    /// once a second.
    fn within_rate(&mut self) -> bool {
        let now = Instant::now();
        if self.rate.allow(now) {
            return true;
        }
        if now.duration_since(self.refused.1) >= Duration::from_secs(1) {
            self.refused = (0, now);
        }
        self.refused.0 += 1;
        self.state.stats.limit_hit("message_rate");
        if self
            .warned
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1))
        {
            self.warned = Some(now);
            self.send_error(&ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} messages a second (server.ws_messages_per_second); \
                     messages dropped",
                    self.state.ws_messages_per_second
                ),
            ));
        }
        false
    }

    /// Whether the client sends far beyond its rate (within one second, [`FLOOD_FACTOR`] times
    /// its allowance refused): it is then dropped.
    fn flooding(&self) -> bool {
        self.refused.0 >= FLOOD_FACTOR * self.state.ws_messages_per_second
    }

    fn handle_text(&mut self, text: &str) {
        if text.len() > MAX_MESSAGE_BYTES {
            self.state.stats.limit_hit("message_size");
        }
        let msg = match parse(text) {
            Ok(msg) => msg,
            Err(e) => {
                self.state.stats.ws_message("invalid");
                return self.send_error(&e);
            }
        };
        self.state.stats.ws_message(msg.kind());
        match msg {
            ClientMessage::Ping => self.send(&ServerMessage::pong()),
            ClientMessage::StartStream { camera_id, url } => {
                match self.state.hub.start(self.conn, camera_id, &url) {
                    Ok(sub) => self.watch(sub),
                    Err(e) => self.send_error(&e),
                }
            }
            ClientMessage::Subscribe { camera_id } => {
                match self.state.hub.subscribe(self.conn, camera_id) {
                    Ok(sub) => self.watch(sub),
                    Err(e) => self.send_error(&e),
                }
            }
            ClientMessage::StopStream { camera_id } => match self.unwatch(camera_id) {
                Some(_) => self.send(&ServerMessage::stream_stopped(
                    camera_id,
                    "Stopped by client",
                )),
                None => self.send_error(&unknown(camera_id)),
            },
            ClientMessage::Unsubscribe { camera_id } => match self.unwatch(camera_id) {
                // The last watcher left: the camera stopped (SPEC 4).
                Some(true) => self.send(&ServerMessage::stream_stopped(
                    camera_id,
                    "Stopped: no watchers left",
                )),
                Some(false) => {}
                None => self.send_error(&unknown(camera_id)),
            },
            ClientMessage::CheckCamera { camera_id, url } => self.check_camera(camera_id, url),
        }
    }

    /// Runs a `check_camera` probe in the background, within the session's and the service's
    /// caps; the answer is a `camera_status` (or `rate_limited` when a cap is reached).
    fn check_camera(&mut self, camera_id: CameraId, url: String) {
        let permits = Arc::clone(&self.checks)
            .try_acquire_owned()
            .map_err(|_| {
                format!(
                    "{MAX_CHECKS_PER_SESSION} camera checks already running on this connection; \
                     wait for their answers"
                )
            })
            .and_then(|mine| {
                Arc::clone(&self.state.checks)
                    .try_acquire_owned()
                    .map(|all| (mine, all))
                    .map_err(|_| format!("{MAX_CHECKS} camera checks already running"))
            });
        let permits = match permits {
            Ok(permits) => permits,
            Err(msg) => {
                self.state.stats.limit_hit("camera_checks");
                return self.send_error(
                    &ProtocolError::new(ErrorCode::RateLimited, msg).for_camera(camera_id),
                );
            }
        };
        let out = self.out.clone();
        let policy = self.state.policy.sources.clone();
        let stats = Arc::clone(&self.state.stats);
        let ended = self.ended.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                _ = ended.cancelled() => return,
                result = probe(&url, &policy, permits) => result,
            };
            let status = match result {
                Ok(latency) => CameraStatus {
                    latency_ms: Some(latency.as_millis() as u64),
                    ..CameraStatus::new(camera_id, CameraState::Online, "camera reachable")
                },
                Err(e) => CameraStatus::new(camera_id, CameraState::Offline, &e.to_string()),
            };
            let text = message_text(&ServerMessage::CameraStatus(status));
            let sent = tokio::time::timeout(REPLY_TIMEOUT, out.send(Outbound::text(text)));
            if !matches!(sent.await, Ok(Ok(()))) {
                stats.ws_dropped.inc();
            }
        });
    }
}

fn unknown(camera_id: CameraId) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::UnknownCamera,
        format!("not watching camera {camera_id}"),
    )
    .for_camera(camera_id)
}

/// Copies one camera's broadcast into a client's queue until cancelled.
async fn forward(
    mut events: broadcast::Receiver<Broadcast>,
    out: mpsc::Sender<Outbound>,
    cancel: CancellationToken,
    stats: Arc<Metrics>,
) {
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => return,
            msg = events.recv() => msg,
        };
        match msg {
            Ok(event) => {
                let item = Outbound {
                    msg: Message::Text(event_text(&event).as_ref().into()),
                    captured: event.captured,
                };
                if out.try_send(item).is_err() {
                    if out.is_closed() {
                        return;
                    }
                    stats.ws_dropped.inc();
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                stats.ws_dropped.inc_by(n);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn session(socket: WebSocket, state: AppState, _permit: ConnectionPermit) {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_CAPACITY);
    let stats = Arc::clone(&state.stats);
    stats.ws_connections.inc();
    stats.ws_clients.inc();
    let writer_stats = Arc::clone(&stats);
    let mut writer = tokio::spawn(async move {
        let stats = writer_stats;
        while let Some(item) = out_rx.recv().await {
            match tokio::time::timeout(REPLY_TIMEOUT, sink.send(item.msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::info!(conn, "websocket client takes no data; closing");
                    stats.ws_dropped.inc();
                    break;
                }
            }
            stats.ws_sent.inc();
            if let Some(captured) = item.captured {
                stats
                    .end_to_end_latency
                    .observe(captured.elapsed().as_secs_f64());
            }
        }
        // The session notices at once (`out.closed()`) while the close goes out.
        out_rx.close();
        let _ = tokio::time::timeout(WRITER_GRACE, sink.close()).await;
    });
    let heartbeat = state.heartbeat;
    let shutdown = state.shutdown.clone();
    let rate = MessageRate::new(state.ws_messages_per_second, Instant::now());
    let mut s = Session {
        conn,
        state,
        out,
        forwarders: HashMap::new(),
        rate,
        refused: (0, Instant::now()),
        warned: None,
        replies: Vec::new(),
        to_forward: Vec::new(),
        checks: Arc::new(tokio::sync::Semaphore::new(MAX_CHECKS_PER_SESSION)),
        ended: CancellationToken::new(),
    };
    s.send(&ServerMessage::connection_ack());
    s.flush().await;
    tracing::debug!(conn, "websocket connected");

    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    let mut last_seen = Instant::now();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => {
                // Tell the client why its cameras stop (without waiting on a slow one).
                for &camera_id in s.forwarders.keys() {
                    let text = message_text(&ServerMessage::stream_stopped(camera_id, SHUTDOWN_REASON));
                    let _ = s.out.try_send(Outbound::text(text));
                }
                break;
            }
            _ = ticker.tick() => {
                if last_seen.elapsed() >= heartbeat * 3 {
                    tracing::info!(conn, "websocket client silent for 3 heartbeats; closing");
                    break;
                }
                let ping = Outbound { msg: Message::Ping(Default::default()), captured: None };
                let _ = s.out.try_send(ping);
                continue;
            }
            // The writer gave up on the client.
            () = s.out.closed() => break,
            msg = stream.next() => msg,
        };
        let Some(Ok(msg)) = msg else { break };
        last_seen = Instant::now();
        let refused = matches!(msg, Message::Text(_) | Message::Binary(_)) && !s.within_rate();
        if refused && s.flooding() {
            s.state.stats.limit_hit("flood");
            tracing::info!(conn, "websocket client floods; closing");
            let close = Message::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: "message flood".into(),
            }));
            let _ = s.out.try_send(Outbound {
                msg: close,
                captured: None,
            });
            break;
        }
        if !refused {
            match msg {
                Message::Text(text) => s.handle_text(text.as_str()),
                Message::Binary(_) => {
                    s.state.stats.ws_message("invalid");
                    s.send_error(&ProtocolError::new(
                        ErrorCode::InvalidJson,
                        "binary frames are not accepted: send JSON text",
                    ));
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        if !s.flush().await {
            tracing::info!(conn, "websocket client does not read its replies; closing");
            break;
        }
    }
    s.ended.cancel();
    s.state.hub.leave_all(conn);
    drop(s);
    if tokio::time::timeout(WRITER_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    stats.ws_clients.dec();
    tracing::debug!(conn, "websocket closed");
}
