//! The rules' `detection_result` (SPEC section 4) for one analysed frame, built as the typed
//! [`DetectionResult`]; sinks (the LLM, streaming mode) add to it before it is sent.

use base64::Engine;
use imaging::GroupCrop;
use protocol::detection::{
    AlertSource, DangerAlert, DetectedObject, GroupImage, TrafficGroup, TrafficStats,
};
use protocol::{CameraId, DetectionResult};
use vision::Detection;
use vision::scene::SceneFrame;
use vision::scene::rules::RuleKind;

/// What the service says about itself in every result.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// Model file stem, e.g. `yolov8n`.
    pub model_type: String,
    /// Classes the filter keeps.
    pub supported_classes: Vec<String>,
    /// Whether objects are tracked.
    pub tracking_enabled: bool,
}

/// One analysed frame.
#[derive(Debug)]
pub struct FrameResult<'a> {
    /// Camera id.
    pub camera_id: CameraId,
    /// When the frame was analysed.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The frame as JPEG; `None` leaves `frame` null (`analyze` without `--frames`).
    pub jpeg: Option<&'a [u8]>,
    /// Position of the frame in the stream (seconds since the stream started).
    pub stream_time: f64,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Detections in frame pixels.
    pub detections: &'a [Detection],
    /// What the scene made of them.
    pub scene: &'a SceneFrame,
    /// The crop of each of `scene.groups` (`None`: empty region).
    pub crops: &'a [Option<GroupCrop>],
    /// Seconds of detection, tracking and grouping for this frame.
    pub process_time: f64,
}

impl FrameResult<'_> {
    /// Wall-clock time of stream time `t`, relative to this frame.
    fn wall_time(&self, t: f64) -> String {
        let back = chrono::Duration::milliseconds(((self.stream_time - t) * 1000.0).round() as i64);
        iso(self.timestamp - back)
    }
}

/// `t` as the contract writes times: ISO-8601 UTC with milliseconds and `Z`.
pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Builds the frame's `detection_result` from the rules.
pub fn detection_result(r: &FrameResult<'_>, facts: &ModelFacts) -> DetectionResult {
    let scene = r.scene;
    DetectionResult {
        camera_id: r.camera_id,
        timestamp: iso(r.timestamp),
        stream_time: r.stream_time,
        frame: r
            .jpeg
            .map(|jpeg| format!("data:image/jpeg;base64,{}", BASE64.encode(jpeg))),
        image_width: r.width,
        image_height: r.height,
        detected_objects: objects(r),
        traffic_groups: groups(scene),
        group_images: images(r),
        dangerous_driving_results: alerts(r),
        has_dangerous_driving: scene
            .alerts
            .iter()
            .any(|a| a.hit.kind != RuleKind::Congestion),
        max_risk_level: scene.max_level,
        process_time: r.process_time,
        llm_latency: None,
        llm_model: None,
        llm_raw_text: None,
        model_type: facts.model_type.clone(),
        supported_classes: facts.supported_classes.clone(),
        tracking_enabled: facts.tracking_enabled,
        server_draw_enabled: false,
        traffic_stats: TrafficStats::from(scene.stats),
        detection_id: None,
        partial: None,
    }
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Every detection, with its track id where the tracker gave one and its place in the scene
/// (ground metres rounded to centimetres, speed to 0.1 km/h).
fn objects(r: &FrameResult<'_>) -> Vec<DetectedObject> {
    let round = |v: f64, per_unit: f64| (v * per_unit).round() / per_unit;
    r.detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let place = r.scene.places.get(i);
            DetectedObject {
                class: d.label.clone(),
                confidence: d.confidence,
                bbox: d.bbox,
                track_id: r.scene.track_ids.get(i).copied().flatten(),
                ground: place
                    .and_then(|p| p.ground)
                    .map(|[x, y]| [round(x, 100.0), round(y, 100.0)]),
                speed_kmh: place.and_then(|p| p.speed_kmh).map(|v| round(v, 10.0)),
                lane: place.and_then(|p| p.lane.as_deref().map(str::to_string)),
                zone: place.and_then(|p| p.zone.as_deref().map(str::to_string)),
            }
        })
        .collect()
}

/// The scene's groups.
fn groups(scene: &SceneFrame) -> Vec<TrafficGroup> {
    scene
        .groups
        .iter()
        .map(|g| TrafficGroup {
            group_index: g.index,
            group_id: g.id,
            object_count: g.members.len(),
            bbox: g.bbox,
            classes: g.classes.clone(),
            average_confidence: g.average_confidence,
            risk_level: g.level,
            member_track_ids: g.track_ids.clone(),
        })
        .collect()
}

/// Each group's crop, for the groups that have one.
fn images(r: &FrameResult<'_>) -> Vec<GroupImage> {
    r.scene
        .groups
        .iter()
        .zip(r.crops)
        .filter_map(|(g, crop)| {
            let crop = crop.as_ref()?;
            Some(GroupImage {
                group_index: g.index,
                group_id: g.id,
                image_base64: BASE64.encode(&crop.jpeg),
                bbox: g.crop,
                object_count: g.members.len(),
                classes: g.classes.clone(),
                image_width: crop.width,
                image_height: crop.height,
            })
        })
        .collect()
}

/// The rules' alerts, with their start in wall-clock time.
fn alerts(r: &FrameResult<'_>) -> Vec<DangerAlert> {
    r.scene
        .alerts
        .iter()
        .map(|a| DangerAlert {
            kind: a.hit.kind.as_str().to_string(),
            description: a.hit.description.clone(),
            risk_level: a.hit.level,
            confidence: a.hit.confidence,
            group_index: a.group.map(|(index, _)| index),
            group_id: a.group.map(|(_, id)| id),
            risk_types: vec![a.hit.kind.as_str().to_string()],
            trigger_object_ids: a.hit.track_ids.clone(),
            source: AlertSource::Rules,
            measures: a
                .hit
                .measures
                .iter()
                .map(|&(k, v)| (k.to_string(), (v * 100.0).round() / 100.0))
                .collect(),
            started_at: r.wall_time(a.started_at),
            llm_verdict: None,
            is_stale: a.stale,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use vision::BBox;
    use vision::scene::rules::RuleHit;
    use vision::scene::{Alert, Group, Place, RiskLevel, TrafficStats};

    #[test]
    fn result_has_the_contract_fields() {
        let car = |x: f32| Detection {
            label: "car".into(),
            class_id: 2,
            confidence: 0.5,
            bbox: BBox::new(x, 2.0, x + 3.0, 4.0),
        };
        let dets = [car(1.0), car(10.0), car(300.0)];
        let scene = SceneFrame {
            track_ids: vec![Some(7), Some(8), None],
            motion: vec![None; 3],
            places: vec![
                Place {
                    ground: Some([1.23456, -20.0]),
                    speed_kmh: Some(48.26),
                    lane: Some("nb-1".into()),
                    zone: Some("crossing".into()),
                    excluded: false,
                },
                Place::default(),
                Place::default(),
            ],
            groups: vec![Group {
                index: 1,
                id: 3,
                members: vec![0, 1],
                track_ids: vec![7, 8],
                bbox: BBox::new(1.0, 2.0, 13.0, 4.0),
                crop: BBox::new(0.0, 0.0, 25.0, 16.0),
                classes: vec!["car".into()],
                average_confidence: 0.5,
                level: RiskLevel::High,
            }],
            alerts: vec![Alert {
                hit: RuleHit {
                    kind: RuleKind::Tailgating,
                    level: RiskLevel::High,
                    confidence: 0.9,
                    track_ids: vec![7, 8],
                    description: "car #7 follows car #8 0.2 s behind".into(),
                    measures: vec![("headway_s", 0.2345)],
                },
                started_at: 0.3,
                stale: true,
                group: Some((1, 3)),
            }],
            stats: TrafficStats {
                vehicles_per_minute: 2,
                persons_per_minute: 1,
                congestion: RiskLevel::Low,
                ..Default::default()
            },
            max_level: RiskLevel::High,
            ..SceneFrame::default()
        };
        let crops = [Some(GroupCrop {
            jpeg: b"\xff\xd8".to_vec(),
            width: 25,
            height: 16,
        })];
        let ts = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let r = FrameResult {
            camera_id: 5,
            timestamp: ts,
            jpeg: Some(b"\xff\xd8"),
            stream_time: 1.5,
            width: 640,
            height: 360,
            detections: &dets,
            scene: &scene,
            crops: &crops,
            process_time: 0.05,
        };
        let facts = ModelFacts {
            model_type: "yolov8n".into(),
            supported_classes: vec!["car".into()],
            tracking_enabled: true,
        };
        let message =
            protocol::ServerMessage::DetectionResult(Box::new(detection_result(&r, &facts)));
        let v: Value = serde_json::to_value(message).unwrap();
        assert_eq!(v["type"], "detection_result");
        let d = &v["data"];
        assert_eq!(d["cameraId"], 5);
        assert_eq!(d["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(d["frame"], "data:image/jpeg;base64,/9g=");
        assert_eq!(d["streamTime"], 1.5);
        assert_eq!(d["detectedObjects"][0]["class"], "car");
        assert_eq!(d["detectedObjects"][0]["bbox"], json!([1.0, 2.0, 4.0, 4.0]));
        assert_eq!(d["detectedObjects"][1]["trackId"], 8);
        assert!(d["detectedObjects"][2].get("trackId").is_none());
        let placed = &d["detectedObjects"][0];
        assert_eq!(placed["ground"], json!([1.23, -20.0]));
        assert_eq!(placed["speedKmh"], 48.3);
        assert_eq!(placed["lane"], "nb-1");
        assert_eq!(placed["zone"], "crossing");
        for key in ["ground", "speedKmh", "lane", "zone"] {
            assert!(d["detectedObjects"][1].get(key).is_none(), "{key}");
        }
        assert_eq!(d["trackingEnabled"], true);
        assert_eq!(d["serverDrawEnabled"], false);
        let g = &d["trafficGroups"][0];
        assert_eq!(
            (g["groupIndex"].clone(), g["groupId"].clone()),
            (json!(1), json!(3))
        );
        assert_eq!(
            (g["objectCount"].clone(), g["riskLevel"].clone()),
            (json!(2), json!("high"))
        );
        assert_eq!(g["memberTrackIds"], json!([7, 8]));
        let img = &d["groupImages"][0];
        assert_eq!(img["imageBase64"], "/9g=", "no data: prefix");
        assert_eq!(
            (img["imageWidth"].clone(), img["bbox"].clone()),
            (json!(25), json!([0.0, 0.0, 25.0, 16.0]))
        );
        let a = &d["dangerousDrivingResults"][0];
        assert_eq!(
            (a["type"].clone(), a["source"].clone()),
            (json!("tailgating"), json!("rules"))
        );
        assert_eq!(
            (a["groupId"].clone(), a["isStale"].clone()),
            (json!(3), json!(true))
        );
        assert_eq!(a["riskTypes"], json!(["tailgating"]));
        assert_eq!(a["triggerObjectIds"], json!([7, 8]));
        assert_eq!(a["measures"], json!({"headway_s": 0.23}));
        // Started 1.2 s of stream time before this frame.
        assert_eq!(a["startedAt"], "2023-11-14T22:13:18.923Z");
        assert_eq!(
            (d["hasDangerousDriving"].clone(), d["maxRiskLevel"].clone()),
            (json!(true), json!("high"))
        );
        assert_eq!(
            d["trafficStats"],
            json!({"vehiclesPerMinute": 2, "personsPerMinute": 1, "congestionLevel": "low"})
        );
    }
}
