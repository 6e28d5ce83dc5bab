//! What a camera reports about itself: its connection state, counters, and the `camera_status`
//! message sent on every state change. Shared between the camera's tasks and `/api/cameras`.

use serde::Serialize;
use serde_json::json;
use vision::scene::TrafficStats;

use crate::llm::camera::LlmCounters;

use crate::http::protocol::{CameraId, envelope};

/// Connection state of a camera (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Opening the source for the first time.
    Connecting,
    /// Frames are arriving.
    Online,
    /// The source failed; retrying with backoff.
    Reconnecting,
    /// Stopped.
    Offline,
}

impl State {
    /// The state's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
        }
    }
}

/// A camera's public state and counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraInfo {
    /// Camera id.
    pub camera_id: CameraId,
    /// The source URL with any password redacted.
    pub url: String,
    /// Current state.
    pub state: State,
    /// Why it is in that state.
    pub message: String,
    /// Frames run through detection.
    pub frames_analysed: u64,
    /// Vehicles (car, bus, truck, motorcycle, bicycle) detected, summed over analysed frames.
    pub vehicle_detections: u64,
    /// Persons detected, summed over analysed frames.
    pub person_detections: u64,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames received from the source.
    pub frames_received: u64,
    /// Decode jobs dropped because analysis was still busy with the previous one.
    pub frames_dropped: u64,
    /// Times the source was reopened after a failure.
    pub reconnects: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Clients watching.
    pub watchers: usize,
    /// Declared in configuration: runs whoever watches.
    pub pinned: bool,
    /// Traffic counters from the camera's scene.
    pub traffic_stats: TrafficInfo,
    /// LLM requests and outcomes, when the LLM is on.
    pub llm: Option<LlmCounters>,
}

/// A camera's traffic counters as `/api/cameras` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficInfo {
    /// Distinct vehicles (tracks) that appeared in the last minute.
    pub vehicles_per_minute: u32,
    /// Distinct persons (tracks) that appeared in the last minute.
    pub persons_per_minute: u32,
    /// `none`, `low`, `medium` or `high`.
    pub congestion_level: &'static str,
    /// Distinct vehicles since the camera started.
    pub vehicles_total: u64,
    /// Distinct persons since the camera started.
    pub persons_total: u64,
}

impl From<TrafficStats> for TrafficInfo {
    fn from(s: TrafficStats) -> Self {
        Self {
            vehicles_per_minute: s.vehicles_per_minute,
            persons_per_minute: s.persons_per_minute,
            congestion_level: s.congestion.as_str(),
            vehicles_total: s.vehicles_total,
            persons_total: s.persons_total,
        }
    }
}

impl CameraInfo {
    /// A camera about to connect.
    pub fn new(camera_id: CameraId, url: String) -> Self {
        Self {
            camera_id,
            url,
            state: State::Connecting,
            message: "connecting".into(),
            frames_analysed: 0,
            vehicle_detections: 0,
            person_detections: 0,
            frames_decoded: 0,
            frames_received: 0,
            frames_dropped: 0,
            reconnects: 0,
            last_error: None,
            watchers: 0,
            pinned: false,
            traffic_stats: TrafficStats::default().into(),
            llm: None,
        }
    }

    /// The `camera_status` message for the current state.
    pub fn status_message(&self) -> String {
        camera_status(self.camera_id, self.state, &self.message, None)
    }
}

/// A `camera_status` message; `status` is 1 when online.
pub fn camera_status(
    camera_id: CameraId,
    state: State,
    message: &str,
    latency_ms: Option<u64>,
) -> String {
    let mut data = json!({
        "cameraId": camera_id,
        "status": i32::from(state == State::Online),
        "state": state,
        "message": message,
    });
    if let Some(ms) = latency_ms {
        data["latencyMs"] = json!(ms);
    }
    envelope("camera_status", data)
}
