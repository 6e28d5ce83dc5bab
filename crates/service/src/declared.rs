//! Where declared cameras (`cameras.yaml`, the backend's list) go: in standalone mode, and in
//! streaming mode without the detector role, straight to this instance's camera hub; in a
//! fleet (streaming mode with the detector role), to the camera definitions topic, from which
//! Kafka's group membership gives each camera to exactly one detector instance.

use std::sync::Arc;

use camera::hub::CameraHub;
use protocol::CameraId;
use streaming::fleet::Definitions;

/// The target of camera declarations.
#[derive(Debug, Clone)]
pub enum Declared {
    /// This instance runs them.
    Local(Arc<CameraHub>),
    /// The fleet runs them, each on one instance.
    Fleet(Arc<Definitions>),
}

impl Declared {
    /// Declares camera `id` on `url`.
    pub fn declare(&self, id: CameraId, url: &str) -> Result<(), String> {
        match self {
            Self::Local(hub) => hub.pin(id, url),
            Self::Fleet(definitions) => definitions.declare(id, url),
        }
    }

    /// Withdraws camera `id`.
    pub fn withdraw(&self, id: CameraId) {
        match self {
            Self::Local(hub) => hub.unpin(id),
            Self::Fleet(definitions) => definitions.withdraw(id),
        }
    }
}
