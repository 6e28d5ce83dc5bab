//! HTTP bodies (SPEC section 3): the `{code, msg, data}` envelope every JSON answer uses, the
//! health check and the camera list.

use serde::{Deserialize, Serialize};
use vision::scene::RiskLevel;

use crate::CameraId;
use crate::server::CameraState;

/// `{"code", "msg", "data"}`: `code` is the HTTP status, `msg` a plain message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The HTTP status.
    pub code: u16,
    /// `OK`, or what went wrong, revealing nothing internal.
    pub msg: String,
    /// The answer; `null` on errors.
    pub data: Option<T>,
}

impl<T> Envelope<T> {
    /// A success.
    pub fn ok(data: T) -> Self {
        Self {
            code: 200,
            msg: "OK".into(),
            data: Some(data),
        }
    }
}

impl Envelope<()> {
    /// An error with HTTP status `code`.
    pub fn error(code: u16, msg: &str) -> Self {
        Self {
            code,
            msg: msg.into(),
            data: None,
        }
    }
}

/// `GET /api/health/health_check` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `UP`.
    pub status: String,
    /// `algo`.
    pub service: String,
    /// The crate version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Cameras running.
    pub active_streams: usize,
    /// Whether the LLM is in use.
    pub llm_enabled: bool,
    /// `standalone` or `streaming`.
    pub mode: String,
    /// Messages not delivered to slow WebSocket clients since start (beyond SPEC 3).
    pub ws_messages_dropped: u64,
    /// The measurement database, when measurement is on (beyond SPEC 3); `status` is
    /// `DEGRADED` while it is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseHealth>,
    /// Each dependency `UP` or `DOWN` (SPEC 6): `kafka` and `redis` in streaming mode,
    /// `database` when measurement is on; `status` is `DEGRADED` while one is down.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dependencies: std::collections::BTreeMap<String, String>,
}

/// `GET /api/health/ready`: whether this instance can do its work now (for orchestrators).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// True: serve traffic to it.
    pub ready: bool,
    /// What is missing (empty when ready).
    pub waiting_for: Vec<String>,
}

/// The measurement database in the health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseHealth {
    /// `sqlite` or `postgresql`.
    pub backend: String,
    /// Whether the last write (or connection) worked.
    pub up: bool,
    /// Rows waiting to be written.
    pub pending_rows: u64,
    /// Rows dropped since start (no room while the database was down).
    pub rows_dropped: u64,
    /// The last failure, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One camera in `GET /api/cameras`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraInfo {
    /// Camera id.
    pub camera_id: CameraId,
    /// The source URL with any password redacted.
    pub url: String,
    /// Current state.
    pub state: CameraState,
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

impl CameraInfo {
    /// A camera about to connect.
    pub fn new(camera_id: CameraId, url: String) -> Self {
        Self {
            camera_id,
            url,
            state: CameraState::Connecting,
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
            traffic_stats: TrafficInfo::default(),
            llm: None,
        }
    }
}

/// A camera's traffic counters as `/api/cameras` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficInfo {
    /// Distinct vehicles (tracks) that appeared in the last minute.
    pub vehicles_per_minute: u32,
    /// Distinct persons (tracks) that appeared in the last minute.
    pub persons_per_minute: u32,
    /// `none`, `low`, `medium` or `high`.
    pub congestion_level: RiskLevel,
    /// Distinct vehicles since the camera started.
    pub vehicles_total: u64,
    /// Distinct persons since the camera started.
    pub persons_total: u64,
}

impl From<vision::scene::TrafficStats> for TrafficInfo {
    fn from(s: vision::scene::TrafficStats) -> Self {
        Self {
            vehicles_per_minute: s.vehicles_per_minute,
            persons_per_minute: s.persons_per_minute,
            congestion_level: s.congestion,
            vehicles_total: s.vehicles_total,
            persons_total: s.persons_total,
        }
    }
}

/// Counters of one camera's LLM use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmCounters {
    /// Requests sent.
    pub requests: u64,
    /// Answers used.
    pub answers: u64,
    /// Calls that failed after their retries.
    pub failures: u64,
    /// Answers that could not be read.
    pub parse_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_carry_code_msg_and_data() {
        assert_eq!(
            serde_json::to_value(Envelope::ok(json!([1]))).unwrap(),
            json!({"code": 200, "msg": "OK", "data": [1]})
        );
        assert_eq!(
            serde_json::to_value(Envelope::error(404, "Not Found")).unwrap(),
            json!({"code": 404, "msg": "Not Found", "data": null})
        );
    }
}
