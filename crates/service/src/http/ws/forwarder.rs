//! The forwarder of one watched camera: a task that copies the camera's broadcast into a
//! client's outbound queue. It never waits for room: a slow client loses camera messages
//! (counted in `ws_messages_dropped`), never slows the camera or other clients.

use std::sync::Arc;

use axum::extract::ws::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::message_text;
use super::writer::Outbound;
use crate::metrics::Metrics;
use camera::broadcast::Broadcast;

/// The JSON text of a camera's message, made once for all its watchers.
fn event_text(event: &Broadcast) -> Arc<str> {
    Arc::clone(
        event
            .text
            .get_or_init(|| message_text(&event.message).into()),
    )
}

/// Copies one camera's broadcast into a client's queue until cancelled.
pub(super) async fn forward(
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
                    judged: event.judged,
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
