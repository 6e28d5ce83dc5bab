//! `detection_result` (SPEC section 4): everything the service says about one analysed frame.
//! Field names are the contract's camelCase; `Option`s that the contract shows as `null` stay
//! in the message, the ones it does not name (`trackId`, `detectionId`, `partial`) are left
//! out when absent.

use serde::{Deserialize, Serialize};
use vision::BBox;
use vision::scene::RiskLevel;

use crate::CameraId;

/// `detection_result.data`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionResult {
    /// Camera id.
    pub camera_id: CameraId,
    /// When the frame was analysed, ISO-8601 UTC with milliseconds and `Z`.
    pub timestamp: String,
    /// Seconds since the stream (or file) started (beyond SPEC 4: where in the video).
    pub stream_time: f64,
    /// The frame as `data:image/jpeg;base64,...`; `null` where not sent (`analyze`, Kafka).
    pub frame: Option<String>,
    /// Frame width in pixels.
    pub image_width: u32,
    /// Frame height in pixels.
    pub image_height: u32,
    /// Every detection of the frame.
    pub detected_objects: Vec<DetectedObject>,
    /// Nearby objects clustered into groups.
    pub traffic_groups: Vec<TrafficGroup>,
    /// Each group's evidence crop.
    pub group_images: Vec<GroupImage>,
    /// Rule and LLM alerts.
    pub dangerous_driving_results: Vec<DangerAlert>,
    /// Whether any alert other than congestion is present.
    pub has_dangerous_driving: bool,
    /// The highest level of the frame.
    pub max_risk_level: RiskLevel,
    /// Seconds of detection, tracking and grouping for this frame.
    pub process_time: f64,
    /// Seconds the LLM answer shown here took.
    pub llm_latency: Option<f64>,
    /// The model of that answer.
    pub llm_model: Option<String>,
    /// That answer's text as received.
    pub llm_raw_text: Option<String>,
    /// Model file stem, e.g. `yolov8n`.
    pub model_type: String,
    /// Classes the detector keeps.
    pub supported_classes: Vec<String>,
    /// Whether objects are tracked.
    pub tracking_enabled: bool,
    /// Always false: boxes are drawn by the client.
    pub server_draw_enabled: bool,
    /// Traffic counters of the camera.
    pub traffic_stats: TrafficStats,
    /// Streaming mode: the frame's id across topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_id: Option<String>,
    /// Streaming mode, merged results: some LLM answers never came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectedObject {
    /// COCO class name.
    pub class: String,
    /// Detector confidence.
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in pixels of the original frame.
    pub bbox: BBox,
    /// Stable id across frames, when tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    /// Ground position `[X, Y]` in metres, with a calibrated scene (SPEC 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground: Option<[f64; 2]>,
    /// Calibrated track speed, km/h, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
    /// Name of the scene lane the object is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Name of the scene zone the object is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// One traffic group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficGroup {
    /// 1-based index in this frame.
    pub group_index: usize,
    /// Stable id across frames.
    pub group_id: u64,
    /// Members.
    pub object_count: usize,
    /// Union of the members' boxes.
    pub bbox: BBox,
    /// Distinct classes of the members.
    pub classes: Vec<String>,
    /// Mean detector confidence of the members.
    pub average_confidence: f32,
    /// The group's level (rules, raised by LLM findings on it).
    pub risk_level: RiskLevel,
    /// Track ids of the members.
    pub member_track_ids: Vec<u64>,
}

/// One group's evidence crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupImage {
    /// The group's index in this frame.
    pub group_index: usize,
    /// The group's stable id.
    pub group_id: u64,
    /// JPEG, base64, without a `data:` prefix.
    pub image_base64: String,
    /// The cropped region in frame pixels.
    pub bbox: BBox,
    /// Members.
    pub object_count: usize,
    /// Distinct classes of the members.
    pub classes: Vec<String>,
    /// Crop width (at most 1280 on the long side).
    pub image_width: u32,
    /// Crop height.
    pub image_height: u32,
}

/// Who raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// The rules on the tracks.
    Rules,
    /// The multimodal LLM.
    Llm,
}

/// One entry of `dangerousDrivingResults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DangerAlert {
    /// The kind, e.g. `tailgating`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened, in words.
    pub description: String,
    /// Its level.
    pub risk_level: RiskLevel,
    /// Confidence, 0 to 1.
    pub confidence: f32,
    /// The group's index in this frame, when the alert is on a group here.
    pub group_index: Option<usize>,
    /// The group's stable id, when the alert is on a group.
    pub group_id: Option<u64>,
    /// Kinds of danger named.
    pub risk_types: Vec<String>,
    /// Track ids involved.
    pub trigger_object_ids: Vec<u64>,
    /// Rules or LLM.
    pub source: AlertSource,
    /// When the alert started, ISO-8601 UTC.
    pub started_at: String,
    /// Carried from an earlier frame.
    pub is_stale: bool,
    /// What the rule measured (beyond SPEC 4), e.g. `{"headway_s": 0.6, "speed_kmh": 52.0}`;
    /// absent when nothing was measured.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub measures: std::collections::BTreeMap<String, f64>,
    /// A rule alert the LLM looked at: `confirmed` or `refuted` (beyond SPEC 4); absent
    /// otherwise. A refuted alert is still shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_verdict: Option<String>,
}

/// `trafficStats`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficStats {
    /// Distinct vehicles (tracks) that appeared in the last minute.
    pub vehicles_per_minute: u32,
    /// Distinct persons (tracks) that appeared in the last minute.
    pub persons_per_minute: u32,
    /// `none`, `low`, `medium` or `high`.
    pub congestion_level: RiskLevel,
    /// Each count line of the camera's scene, crossings in the current bin (SPEC 9); absent
    /// without lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineStat>,
    /// Each lane of the camera's scene in the current bin (SPEC 9); absent without lanes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<LaneStat>,
}

/// One count line in `trafficStats.lines`: crossings in the current bin, all classes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LineStat {
    /// The line's name.
    pub name: String,
    /// Crossings from the left of its arrow to the right.
    #[serde(rename = "in")]
    pub in_: u64,
    /// Crossings the other way.
    pub out: u64,
}

/// One lane in `trafficStats.lanes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneStat {
    /// The lane's name.
    pub name: String,
    /// Vehicles that drove through it in the current bin.
    pub vehicles: u64,
    /// Their mean speed, km/h, when measured (calibrated scenes).
    pub mean_speed_kmh: Option<f64>,
    /// The queue standing at its head now, metres (calibrated lanes with a direction).
    pub queue_length_m: Option<f64>,
}

impl From<vision::scene::TrafficStats> for TrafficStats {
    fn from(s: vision::scene::TrafficStats) -> Self {
        Self {
            vehicles_per_minute: s.vehicles_per_minute,
            persons_per_minute: s.persons_per_minute,
            congestion_level: s.congestion,
            lines: Vec::new(),
            lanes: Vec::new(),
        }
    }
}
