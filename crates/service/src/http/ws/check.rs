//! `check_camera` probes: each runs beside its session holding two permits, one of the
//! session's ([`MAX_CHECKS_PER_SESSION`]) and one of the service's ([`MAX_CHECKS`]), and ends
//! with the session. The answer is a `camera_status`, queued like a reply.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::writer::Outbound;
use super::{MAX_CHECKS, MAX_CHECKS_PER_SESSION, REPLY_TIMEOUT, message_text};
use crate::http::AppState;
use camera::check::probe;
use protocol::server::{CameraState, CameraStatus};
use protocol::{CameraId, ServerMessage};

/// What a running probe holds: a permit of its session's cap and one of the service's.
pub(super) type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// Takes the permits for one more probe; when a cap is reached, the reason to tell the client.
pub(super) fn permits(
    session: &Arc<Semaphore>,
    service: &Arc<Semaphore>,
) -> Result<Permits, String> {
    Arc::clone(session)
        .try_acquire_owned()
        .map_err(|_| {
            format!(
                "{MAX_CHECKS_PER_SESSION} camera checks already running on this connection; \
                 wait for their answers"
            )
        })
        .and_then(|mine| {
            Arc::clone(service)
                .try_acquire_owned()
                .map(|all| (mine, all))
                .map_err(|_| format!("{MAX_CHECKS} camera checks already running"))
        })
}

/// Probes `url` in the background and queues the `camera_status` answer on `out`; gives up
/// without an answer when the session `ended`.
pub(super) fn start(
    camera_id: CameraId,
    url: String,
    permits: Permits,
    state: &AppState,
    out: mpsc::Sender<Outbound>,
    ended: CancellationToken,
) {
    let policy = state.policy.sources.clone();
    let stats = Arc::clone(&state.stats);
    state.tasks.spawn(async move {
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
