//! The writer of one session: a task that drains the session's bounded outbound queue to the
//! socket. Each message gets [`REPLY_TIMEOUT`] to reach the socket; a client that takes longer is
//! dropped. When the queue ends the writer closes the socket, and the session gives it
//! [`WRITER_GRACE`] to do so before it is aborted.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::{REPLY_TIMEOUT, WRITER_GRACE};
use crate::metrics::Metrics;
use camera::hub::ConnId;

/// One message on its way to a client, with the arrival time of the frame it describes.
#[derive(Debug)]
pub(super) struct Outbound {
    /// The WebSocket message.
    pub(super) msg: Message,
    /// When the frame the message describes arrived (for the end-to-end latency).
    pub(super) captured: Option<Instant>,
    /// When that frame was judged (the start of the `deliver` stage).
    pub(super) judged: Option<Instant>,
}

impl Outbound {
    /// A text message that describes no frame.
    pub(super) fn text(text: impl Into<axum::extract::ws::Utf8Bytes>) -> Self {
        Self {
            msg: Message::Text(text.into()),
            captured: None,
            judged: None,
        }
    }
}

/// Starts the writer of session `conn`: it sends what arrives on `out_rx` to `sink` until the
/// queue ends or the client stops reading, then closes the socket.
pub(super) fn spawn(
    conn: ConnId,
    mut sink: SplitSink<WebSocket, Message>,
    mut out_rx: mpsc::Receiver<Outbound>,
    stats: Arc<Metrics>,
    tasks: &TaskTracker,
) -> JoinHandle<()> {
    tasks.spawn(async move {
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
            if let Some(judged) = item.judged {
                stats.stage("deliver", judged.elapsed());
            }
        }
        // The session notices at once (`out.closed()`) while the close goes out.
        out_rx.close();
        let _ = tokio::time::timeout(WRITER_GRACE, sink.close()).await;
    })
}

/// Waits for the writer of an ended session to flush its queue, at most [`WRITER_GRACE`], then
/// aborts it.
pub(super) async fn finish(mut writer: JoinHandle<()>) {
    if tokio::time::timeout(WRITER_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}
