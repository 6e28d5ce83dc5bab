//! The JSON messages of streaming mode (SPEC 6), one type per topic, all keyed by `cameraId` and
//! carrying a `messageId` that consumers use to drop duplicates. A crop travels once: in the
//! detection record's `result.groupImages` (base64, no `data:` URI beside it) and then only in
//! its own task. Every message is checked against [`MAX_MESSAGE_BYTES`] before it is sent.

use protocol::DetectionResult;
use protocol::detection::GroupImage;
use serde::{Deserialize, Serialize};

/// Largest message we send: under the broker's default 1 MiB (`message.max.bytes`), with room
/// for the key, headers and record overhead.
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// A group the detector thinks worth asking the LLM about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupBrief {
    /// Stable group id.
    pub group_id: u64,
    /// 1-based index in the frame.
    pub group_index: usize,
    /// The tracker's text about the group (classes, spacing, speeds, rules fired).
    pub summary: String,
    /// Whether a rule flagged it.
    pub flagged: bool,
}

/// `detection-results`: one analysed frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionRecord {
    /// Unique per message.
    pub message_id: String,
    /// Unique per analysed frame; tasks and results refer to it.
    pub detection_id: String,
    /// The camera.
    pub camera_id: i64,
    /// The process whose WebSocket clients watch the camera.
    pub instance_id: String,
    /// `detection_result.data` without `frame`.
    pub result: DetectionResult,
    /// Groups to ask about, best first.
    pub groups: Vec<GroupBrief>,
}

/// `assessment-tasks`: one group to show the LLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssessmentTask {
    /// Unique per message (`task:{taskId}`).
    pub message_id: String,
    /// `{detectionId}/{groupId}`.
    pub task_id: String,
    /// The frame.
    pub detection_id: String,
    /// The camera.
    pub camera_id: i64,
    /// Where the merged result goes.
    pub instance_id: String,
    /// The group.
    pub group_id: u64,
    /// Its index in the frame.
    pub group_index: usize,
    /// The tracker's text about it.
    pub summary: String,
    /// Whether a rule flagged it.
    pub flagged: bool,
    /// The crop, JPEG in base64.
    pub image_base64: String,
    /// Tasks made from the same frame.
    pub task_count: usize,
}

/// One finding, as the aggregator merges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingRecord {
    /// What the model saw.
    pub description: String,
    /// `none`, `low`, `medium` or `high`.
    pub risk_level: protocol::RiskLevel,
    /// 0 to 1.
    pub confidence: f32,
    /// Kinds of danger.
    pub risk_types: Vec<String>,
    /// Track ids the model named.
    pub trigger_object_ids: Vec<u64>,
    /// `confirmed` or `refuted`: what the model said of the rules that fired on the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_verdict: Option<String>,
}

/// `risk-assessment-results`: the answer to one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssessmentOutcome {
    /// Unique per message (`result:{taskId}`).
    pub message_id: String,
    /// The task.
    pub task_id: String,
    /// The frame.
    pub detection_id: String,
    /// The camera.
    pub camera_id: i64,
    /// Where the merged result goes.
    pub instance_id: String,
    /// The group.
    pub group_id: u64,
    /// Whether the model answered usably.
    pub ok: bool,
    /// The finding, when the model answered.
    pub finding: Option<FindingRecord>,
    /// The model's text.
    pub raw_text: String,
    /// The model that answered.
    pub model: String,
    /// Seconds the call took.
    pub latency_seconds: f64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// `merged-results`: a detection with its LLM answers, for the instance serving the camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergedResult {
    /// `merged:{detectionId}`: a complete and a partial result of one detection share it, so
    /// whichever comes first is the one shown.
    pub message_id: String,
    /// The frame.
    pub detection_id: String,
    /// The camera.
    pub camera_id: i64,
    /// The instance whose clients get it.
    pub instance_id: String,
    /// Whether some answers never came.
    pub partial: bool,
    /// `detection_result.data` with the answers merged.
    pub data: DetectionResult,
}

/// A message that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Over [`MAX_MESSAGE_BYTES`] even after shedding what can be shed.
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not valid JSON of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Serializes `message`, refusing it when over the limit.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, MessageError> {
    let bytes = serde_json::to_vec(message).map_err(|e| MessageError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Parses a message of type `T`.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, MessageError> {
    serde_json::from_slice(payload).map_err(|e| MessageError::Malformed(e.to_string()))
}

/// Encodes a detection record, dropping crops of groups nobody will ask about when the record
/// is over the limit, then the remaining crops from the last-ranked group on.
pub fn encode_detection(record: &DetectionRecord) -> Result<Vec<u8>, MessageError> {
    match encode(record) {
        Err(MessageError::TooLarge(_)) => {}
        other => return other,
    }
    let mut slim = record.clone();
    let asked: Vec<u64> = record.groups.iter().map(|g| g.group_id).collect();
    slim.result
        .group_images
        .retain(|img| asked.contains(&img.group_id));
    loop {
        match encode(&slim) {
            Err(MessageError::TooLarge(n)) => {
                let Some(dropped) = slim.groups.pop() else {
                    return Err(MessageError::TooLarge(n));
                };
                slim.result
                    .group_images
                    .retain(|img| img.group_id != dropped.group_id);
            }
            other => return other,
        }
    }
}

/// The tasks of a detection record: one per asked-about group that has its crop, at most `max`.
pub fn tasks_for(record: &DetectionRecord, max: usize) -> Vec<AssessmentTask> {
    let crop = |id: u64| -> Option<String> {
        let image: &GroupImage = record
            .result
            .group_images
            .iter()
            .find(|img| img.group_id == id)?;
        Some(image.image_base64.clone())
    };
    let chosen: Vec<(&GroupBrief, String)> = record
        .groups
        .iter()
        .filter_map(|g| Some((g, crop(g.group_id)?)))
        .take(max)
        .collect();
    let count = chosen.len();
    chosen
        .into_iter()
        .map(|(g, image)| {
            let task_id = format!("{}/{}", record.detection_id, g.group_id);
            AssessmentTask {
                message_id: format!("task:{task_id}"),
                task_id,
                detection_id: record.detection_id.clone(),
                camera_id: record.camera_id,
                instance_id: record.instance_id.clone(),
                group_id: g.group_id,
                group_index: g.group_index,
                summary: g.summary.clone(),
                flagged: g.flagged,
                image_base64: image,
                task_count: count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(crop_bytes: usize) -> DetectionRecord {
        let image = |id: u64| GroupImage {
            group_index: id as usize,
            group_id: id,
            image_base64: "A".repeat(crop_bytes),
            bbox: Default::default(),
            object_count: 2,
            classes: vec!["car".into()],
            image_width: 10,
            image_height: 10,
        };
        DetectionRecord {
            message_id: "det:7-a-1".into(),
            detection_id: "7-a-1".into(),
            camera_id: 7,
            instance_id: "a".into(),
            result: DetectionResult {
                camera_id: 7,
                group_images: vec![image(11), image(12), image(13)],
                ..Default::default()
            },
            groups: vec![
                GroupBrief {
                    group_id: 12,
                    group_index: 2,
                    summary: "Group 1 (id 12): 2 cars".into(),
                    flagged: true,
                },
                GroupBrief {
                    group_id: 11,
                    group_index: 1,
                    summary: "Group 2 (id 11): 3 persons".into(),
                    flagged: false,
                },
            ],
        }
    }

    #[test]
    fn tasks_carry_their_own_crop_once_in_rank_order() {
        let r = record(10);
        let tasks = tasks_for(&r, 4);
        let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["7-a-1/12", "7-a-1/11"]);
        assert!(
            tasks
                .iter()
                .all(|t| t.task_count == 2 && t.image_base64.len() == 10)
        );
        assert_eq!(tasks[0].message_id, "task:7-a-1/12");
        assert_eq!(tasks_for(&r, 1).len(), 1);
        let text = String::from_utf8(encode(&tasks[0]).unwrap()).unwrap();
        assert_eq!(text.matches(&"A".repeat(10)).count(), 1);
        assert!(!text.contains("data:image"));
        let back: AssessmentTask = decode(text.as_bytes()).unwrap();
        assert_eq!(back, tasks[0]);
    }

    #[test]
    fn oversized_records_shed_crops_nobody_asks_about_first() {
        // Three crops of 400 kB: too big together; group 13 is not asked about.
        let r = record(400_000);
        assert!(matches!(encode(&r), Err(MessageError::TooLarge(_))));
        let slim: DetectionRecord = decode(&encode_detection(&r).unwrap()).unwrap();
        let kept: Vec<u64> = slim
            .result
            .group_images
            .iter()
            .map(|i| i.group_id)
            .collect();
        assert_eq!(kept, [11, 12]);
        assert_eq!(slim.groups.len(), 2);
        // 600 kB crops: only the best-ranked group keeps its crop.
        let slim: DetectionRecord = decode(&encode_detection(&record(600_000)).unwrap()).unwrap();
        assert_eq!(slim.groups.len(), 1);
        assert_eq!(slim.result.group_images[0].group_id, 12);
        // Crops each over the limit: the frame still goes, with nothing to ask about.
        let slim: DetectionRecord = decode(&encode_detection(&record(1_100_000)).unwrap()).unwrap();
        assert!(slim.groups.is_empty());
        assert!(slim.result.group_images.is_empty());
        let mut huge = record(0);
        huge.result.llm_raw_text = Some("x".repeat(1_100_000));
        assert!(matches!(
            encode_detection(&huge),
            Err(MessageError::TooLarge(_))
        ));
        assert!(matches!(
            decode::<DetectionRecord>(b"{\"messageId\": 1}"),
            Err(MessageError::Malformed(_))
        ));
    }
}
