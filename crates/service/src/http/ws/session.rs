//! The state of one session and its reader loop: each client message is parsed and answered
//! through the outbound queue, waiting for room (a client's own answers are never dropped); the
//! server pings every heartbeat and drops a client silent for three; the message rate is
//! applied, and a client that keeps flooding is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::check;
use super::forwarder::forward;
use super::writer::Outbound;
use super::{FLOOD_FACTOR, MAX_CHECKS_PER_SESSION, REPLY_TIMEOUT, SHUTDOWN_REASON, message_text};
use crate::http::AppState;
use crate::http::limits::MessageRate;
use camera::broadcast::Broadcast;
use camera::hub::{ConnId, Subscription};
use protocol::client::{MAX_MESSAGE_BYTES, parse};
use protocol::{CameraId, ClientMessage, ErrorCode, ProtocolError, ServerMessage};

/// One client's session.
pub(super) struct Session {
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
    /// The session of connection `conn`, answering through `out`.
    pub(super) fn new(conn: ConnId, state: AppState, out: mpsc::Sender<Outbound>) -> Self {
        let rate = MessageRate::new(state.ws_messages_per_second, Instant::now());
        Self {
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
        }
    }

    /// Reads the client until it leaves, goes silent for three heartbeats, floods or stops
    /// reading its replies, or the service shuts down.
    pub(super) async fn run(&mut self, stream: &mut SplitStream<WebSocket>) {
        let conn = self.conn;
        let heartbeat = self.state.heartbeat;
        let shutdown = self.state.shutdown.clone();
        let mut ticker = tokio::time::interval(heartbeat);
        ticker.tick().await;
        let mut last_seen = Instant::now();
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.announce_shutdown();
                    break;
                }
                _ = ticker.tick() => {
                    if last_seen.elapsed() >= heartbeat * 3 {
                        tracing::info!(conn, "websocket client silent for 3 heartbeats; closing");
                        break;
                    }
                    self.ping();
                    continue;
                }
                // The writer gave up on the client.
                () = self.out.closed() => break,
                msg = stream.next() => msg,
            };
            let Some(Ok(msg)) = msg else { break };
            last_seen = Instant::now();
            if !self.receive(msg).await {
                break;
            }
        }
    }

    /// Ends the session: its probes and forwarders stop and it leaves its cameras. The writer
    /// flushes what is queued once the session (its queue's sender) is gone.
    pub(super) fn end(self) {
        self.ended.cancel();
        self.state.hub.leave_all(self.conn);
    }

    /// Tells the client why its cameras stop (without waiting on a slow one).
    fn announce_shutdown(&self) {
        for &camera_id in self.forwarders.keys() {
            let text = message_text(&ServerMessage::stream_stopped(camera_id, SHUTDOWN_REASON));
            let _ = self.out.try_send(Outbound::text(text));
        }
    }

    /// Queues the heartbeat ping (dropped when the queue is full).
    fn ping(&self) {
        let ping = Outbound {
            msg: Message::Ping(Default::default()),
            captured: None,
            judged: None,
        };
        let _ = self.out.try_send(ping);
    }

    /// Handles one message and hands the replies to the writer; false when the session ends
    /// (the client closed, floods or does not read its replies).
    async fn receive(&mut self, msg: Message) -> bool {
        let refused = matches!(msg, Message::Text(_) | Message::Binary(_)) && !self.within_rate();
        if refused && self.flooding() {
            self.close_flooding();
            return false;
        }
        if !refused {
            match msg {
                Message::Text(text) => self.handle_text(text.as_str()),
                Message::Binary(_) => {
                    self.state.stats.ws_message("invalid");
                    self.send_error(&ProtocolError::new(
                        ErrorCode::InvalidJson,
                        "binary frames are not accepted: send JSON text",
                    ));
                }
                Message::Close(_) => return false,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        if !self.flush().await {
            let conn = self.conn;
            tracing::info!(conn, "websocket client does not read its replies; closing");
            return false;
        }
        true
    }

    /// Closes a flooding client's connection with a policy close frame.
    fn close_flooding(&self) {
        let conn = self.conn;
        self.state.stats.limit_hit("flood");
        tracing::info!(conn, "websocket client floods; closing");
        let close = Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: "message flood".into(),
        }));
        let _ = self.out.try_send(Outbound {
            msg: close,
            captured: None,
            judged: None,
        });
    }

    /// Queues a reply; [`Session::flush`] hands it to the writer.
    pub(super) fn send(&mut self, message: &ServerMessage) {
        self.replies.push(message_text(message));
    }

    fn send_error(&mut self, e: &ProtocolError) {
        self.send(&e.to_message());
    }

    /// Hands the queued replies to the writer, waiting for room: a client's own answers are
    /// never dropped (camera messages are, for slow clients). False when the client has not
    /// read for [`REPLY_TIMEOUT`]: it is stuck and the session ends.
    pub(super) async fn flush(&mut self) -> bool {
        for text in std::mem::take(&mut self.replies) {
            let sent = tokio::time::timeout(REPLY_TIMEOUT, self.out.send(Outbound::text(text)));
            if !matches!(sent.await, Ok(Ok(()))) {
                self.state.stats.ws_dropped.inc();
                return false;
            }
        }
        for (events, token) in std::mem::take(&mut self.to_forward) {
            self.state.tasks.spawn(forward(
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
        let permits = match check::permits(&self.checks, &self.state.checks) {
            Ok(permits) => permits,
            Err(msg) => {
                self.state.stats.limit_hit("camera_checks");
                return self.send_error(
                    &ProtocolError::new(ErrorCode::RateLimited, msg).for_camera(camera_id),
                );
            }
        };
        check::start(
            camera_id,
            url,
            permits,
            &self.state,
            self.out.clone(),
            self.ended.clone(),
        );
    }
}

fn unknown(camera_id: CameraId) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::UnknownCamera,
        format!("not watching camera {camera_id}"),
    )
    .for_camera(camera_id)
}
