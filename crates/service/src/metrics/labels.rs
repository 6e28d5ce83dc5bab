//! The label sets of the families and the values they may take: every label is bounded
//! (camera id, class, level, rule type, stage, endpoint, limit), never a URL or track id.

use prometheus_client::encoding::EncodeLabelSet;

use protocol::CameraId;

/// A camera's families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    /// Camera id.
    pub camera_id: CameraId,
}

/// Line crossings (SPEC 9) by camera, line, direction and class: line names come from the
/// camera's scene (at most `MAX_ITEMS` of them), never from tracks.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrossingLabel {
    /// Camera id.
    pub camera: CameraId,
    /// The count line's name.
    pub line: String,
    /// `in` or `out`.
    pub direction: &'static str,
    /// Detector class.
    pub class: String,
}

/// Lane speeds by camera and lane (a name from the camera's scene).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabel {
    /// Camera id.
    pub camera: CameraId,
    /// The lane's name.
    pub lane: String,
}

/// Detected objects by camera and class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabel {
    /// Camera id.
    pub camera_id: CameraId,
    /// Detector class (the model's class list bounds it).
    pub class: String,
}

/// Alerts by camera, level and where they came from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// Camera id.
    pub camera_id: CameraId,
    /// `low`, `medium` or `high`.
    pub level: &'static str,
    /// `rules` or `llm`.
    pub source: &'static str,
}

/// Risk types by name and source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RiskTypeLabel {
    /// One of [`RISK_TYPES`] (anything else an LLM says counts as `other`).
    pub risk_type: &'static str,
    /// `rules` or `llm`.
    pub source: &'static str,
}

/// Pipeline errors by stage.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `source`, `decode`, `detect`, `encode`, `inference`, `save`, `snapshot` or `analysis`.
    pub stage: &'static str,
}

/// WebSocket messages from clients by type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WsTypeLabel {
    /// A protocol message type, or `invalid` for anything that did not parse.
    pub r#type: &'static str,
}

/// Requests refused for a missing or wrong token, by endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// `api` or `ws`.
    pub endpoint: &'static str,
}

/// Client limits hit, by limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// One of [`LIMITS`].
    pub limit: &'static str,
}

/// What `system_info` says.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabel {
    /// Crate version.
    pub version: &'static str,
    /// `standalone` or `streaming`.
    pub mode: &'static str,
    /// Detector model file name.
    pub model: String,
    /// LLM model, or `off`.
    pub llm_model: String,
}

/// The client limits, as counted in `client_limit_hits_total`.
pub const LIMITS: [&str; 6] = [
    "connections",
    "connections_per_ip",
    "message_rate",
    "message_size",
    "flood",
    "camera_checks",
];

/// Risk types counted by name; every other LLM risk type is `other`.
pub const RISK_TYPES: [&str; 11] = [
    "tailgating",
    "pedestrian_conflict",
    "wrong_way",
    "sudden_stop",
    "illegal_stop",
    "congestion",
    "speeding",
    "cut_in",
    "red_light",
    "unsafe_lane_change",
    "other",
];

/// The label for a risk type as a model may spell it (`Cut-in`, `red light`, `闯红灯` -> `other`).
pub fn risk_type_label(name: &str) -> &'static str {
    let norm: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    RISK_TYPES
        .iter()
        .find(|t| **t == norm)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_types_are_bounded() {
        assert_eq!(risk_type_label("Cut-in"), "cut_in");
        assert_eq!(risk_type_label(" red light "), "red_light");
        assert_eq!(risk_type_label("tailgating"), "tailgating");
        assert_eq!(risk_type_label("闯红灯"), "other");
        assert_eq!(risk_type_label("https://x/y"), "other");
    }
}
