//! One WebSocket session on `/ws`. A writer task drains a bounded outbound queue to the socket;
//! the reader loop parses each message and answers through that queue; every watched camera has
//! a forwarder task copying its broadcast into the queue. A slow client loses messages (counted),
//! never slows a camera or other clients. The server pings every heartbeat interval and drops a
//! client silent for three.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::protocol::{self, CameraId, ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, ProtocolError};
use crate::camera::check::probe;
use crate::camera::hub::{ConnId, Event, Subscription};
use crate::camera::state::{State as CamState, camera_status};
use crate::metrics::Metrics;

/// Outbound messages queued per client before new ones are dropped. A `detection_result` with
/// its frame is 50-300 KB, so this bounds a stuck client to a few MB beside the kernel's socket
/// buffers; a client watching four cameras at 1.8 s has several seconds of slack.
pub const OUTBOUND_CAPACITY: usize = 16;

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

/// Upgrades to a WebSocket session.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Accept up to 16 MiB at the transport so that frames over our 1 MiB limit get an `error`
    // answer instead of a dropped connection.
    ws.max_message_size(16 * MAX_MESSAGE_BYTES)
        .max_frame_size(16 * MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state))
}

struct Session {
    conn: ConnId,
    state: AppState,
    out: mpsc::Sender<Outbound>,
    forwarders: HashMap<CameraId, CancellationToken>,
}

impl Session {
    fn send(&self, text: String) {
        if self.out.try_send(Outbound::text(text)).is_err() {
            self.state.stats.ws_dropped.inc();
        }
    }

    fn send_error(&self, e: &ProtocolError) {
        self.send(e.to_message());
    }

    /// Starts forwarding a camera's messages, replacing an earlier forwarder of the same camera.
    fn watch(&mut self, sub: Subscription) {
        self.send(sub.status);
        let token = CancellationToken::new();
        if let Some(old) = self.forwarders.insert(sub.camera_id, token.clone()) {
            old.cancel();
        }
        tokio::spawn(forward(
            sub.events,
            self.out.clone(),
            token,
            Arc::clone(&self.state.stats),
        ));
    }

    fn unwatch(&mut self, camera_id: CameraId) -> bool {
        if let Some(token) = self.forwarders.remove(&camera_id) {
            token.cancel();
        }
        self.state.hub.leave(self.conn, camera_id)
    }

    fn handle_text(&mut self, text: &str) {
        let msg = match protocol::parse(text) {
            Ok(msg) => msg,
            Err(e) => {
                self.state.stats.ws_message("invalid");
                return self.send_error(&e);
            }
        };
        self.state.stats.ws_message(msg.kind());
        match msg {
            ClientMessage::Ping => self.send(protocol::pong()),
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
            ClientMessage::StopStream { camera_id } => {
                if self.unwatch(camera_id) {
                    self.send(protocol::stream_stopped(camera_id, "Stopped by client"));
                } else {
                    self.send_error(&unknown(camera_id));
                }
            }
            ClientMessage::Unsubscribe { camera_id } => {
                if !self.unwatch(camera_id) {
                    self.send_error(&unknown(camera_id));
                }
            }
            ClientMessage::CheckCamera { camera_id, url } => {
                let out = self.out.clone();
                let policy = self.state.policy.clone();
                let stats = Arc::clone(&self.state.stats);
                tokio::spawn(async move {
                    let text = match probe(&url, &policy).await {
                        Ok(latency) => camera_status(
                            camera_id,
                            CamState::Online,
                            "camera reachable",
                            Some(latency.as_millis() as u64),
                        ),
                        Err(e) => camera_status(camera_id, CamState::Offline, &e.to_string(), None),
                    };
                    if out.try_send(Outbound::text(text)).is_err() {
                        stats.ws_dropped.inc();
                    }
                });
            }
        }
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
    mut events: broadcast::Receiver<Event>,
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
                    msg: Message::Text(event.text.as_ref().into()),
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

async fn session(socket: WebSocket, state: AppState) {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_CAPACITY);
    let stats = Arc::clone(&state.stats);
    stats.ws_connections.inc();
    stats.ws_clients.inc();
    let writer = tokio::spawn(async move {
        while let Some(item) = out_rx.recv().await {
            if sink.send(item.msg).await.is_err() {
                break;
            }
            stats.ws_sent.inc();
            if let Some(captured) = item.captured {
                stats
                    .end_to_end_latency
                    .observe(captured.elapsed().as_secs_f64());
            }
        }
        let _ = sink.close().await;
        stats.ws_clients.dec();
    });
    let heartbeat = state.heartbeat;
    let shutdown = state.shutdown.clone();
    let mut s = Session {
        conn,
        state,
        out,
        forwarders: HashMap::new(),
    };
    s.send(protocol::connection_ack());
    tracing::debug!(conn, "websocket connected");

    let mut ticker = tokio::time::interval(heartbeat);
    ticker.tick().await;
    let mut last_seen = Instant::now();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                if last_seen.elapsed() >= heartbeat * 3 {
                    tracing::info!(conn, "websocket client silent for 3 heartbeats; closing");
                    break;
                }
                let ping = Outbound { msg: Message::Ping(Default::default()), captured: None };
                let _ = s.out.try_send(ping);
                continue;
            }
            msg = stream.next() => msg,
        };
        let Some(Ok(msg)) = msg else { break };
        last_seen = Instant::now();
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
    for token in s.forwarders.values() {
        token.cancel();
    }
    s.state.hub.leave_all(conn);
    drop(s);
    let _ = writer.await;
    tracing::debug!(conn, "websocket closed");
}
