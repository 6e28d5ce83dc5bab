//! What a camera sends its watchers: a typed message, when the frame it describes arrived, and
//! its JSON text made once (by the HTTP layer) and shared by every watcher.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use protocol::ServerMessage;

/// One message to a camera's watchers.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// The message.
    pub message: Arc<ServerMessage>,
    /// When the frame a `detection_result` describes arrived (for end-to-end latency).
    pub captured: Option<Instant>,
    /// When that frame was judged: from here to the socket is the `deliver` stage (the sinks,
    /// the JSON text, the watcher's queue and the socket).
    pub judged: Option<Instant>,
    /// The message's JSON text, made once by the first writer that sends it and shared by the
    /// others (a result with its frame is large, and it goes to every watcher).
    pub text: Arc<OnceLock<Arc<str>>>,
}

impl Broadcast {
    /// A message about no particular frame.
    pub fn new(message: ServerMessage) -> Self {
        Self {
            message: Arc::new(message),
            captured: None,
            judged: None,
            text: Arc::default(),
        }
    }
}
