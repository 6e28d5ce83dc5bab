//! The `detection_result` message (SPEC section 4) for one analysed frame.

use base64::Engine;
use serde_json::{Value, json};
use vision::Detection;
use vision::scene::SceneFrame;
use vision::scene::rules::RuleKind;

use super::evidence::GroupCrop;
use crate::http::protocol::{CameraId, envelope};
use crate::llm::camera::Verdict;

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

impl ModelFacts {
    /// The facts for the configured model: its file stem, the kept classes, tracking.
    pub fn new(model: &crate::config::ModelConfig, tracking_enabled: bool) -> Self {
        let model_type = model
            .path()
            .file_stem()
            .map_or_else(|| "yolo".to_string(), |s| s.to_string_lossy().into_owned());
        Self {
            model_type,
            supported_classes: model.classes.clone(),
            tracking_enabled,
        }
    }
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
    /// The camera's latest LLM answer, and whether this is its first showing.
    pub llm: Option<(&'a Verdict, bool)>,
}

impl FrameResult<'_> {
    /// Wall-clock time of stream time `t`, relative to this frame.
    fn wall_time(&self, t: f64) -> String {
        let back = chrono::Duration::milliseconds(((self.stream_time - t) * 1000.0).round() as i64);
        iso(self.timestamp - back)
    }
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Builds the `detection_result` message text.
pub fn detection_result(r: &FrameResult<'_>, facts: &ModelFacts) -> String {
    let frame = r.jpeg.map(|jpeg| {
        format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        )
    });
    let scene = r.scene;
    let objects: Vec<Value> = r
        .detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut o = json!({"class": d.label, "confidence": d.confidence, "bbox": d.bbox});
            if let Some(Some(id)) = scene.track_ids.get(i) {
                o["trackId"] = json!(id);
            }
            o
        })
        .collect();
    // The LLM's findings with a level, on the group they name (by groupId) if it is here.
    let llm_findings: Vec<(&crate::llm::parse::Finding, Option<u64>, Option<usize>)> = r
        .llm
        .map(|(v, _)| {
            v.answer
                .results
                .iter()
                .filter(|f| f.level > vision::scene::RiskLevel::None)
                .map(|f| {
                    let id = v.group_ids.get(f.group_index.wrapping_sub(1)).copied();
                    let index = id
                        .and_then(|id| scene.groups.iter().find(|g| g.id == id))
                        .map(|g| g.index);
                    (f, id, index)
                })
                .collect()
        })
        .unwrap_or_default();
    let group_level = |g: &vision::scene::Group| {
        llm_findings
            .iter()
            .filter(|(_, id, _)| *id == Some(g.id))
            .map(|(f, _, _)| f.level)
            .fold(g.level, std::cmp::max)
    };
    let groups: Vec<Value> = scene
        .groups
        .iter()
        .map(|g| {
            json!({
                "groupIndex": g.index,
                "groupId": g.id,
                "objectCount": g.members.len(),
                "bbox": g.bbox,
                "classes": g.classes,
                "averageConfidence": g.average_confidence,
                "riskLevel": group_level(g).as_str(),
                "memberTrackIds": g.track_ids,
            })
        })
        .collect();
    let images: Vec<Value> = scene
        .groups
        .iter()
        .zip(r.crops)
        .filter_map(|(g, crop)| {
            let crop = crop.as_ref()?;
            Some(json!({
                "groupIndex": g.index,
                "groupId": g.id,
                "imageBase64": base64::engine::general_purpose::STANDARD.encode(&crop.jpeg),
                "bbox": g.crop,
                "objectCount": g.members.len(),
                "classes": g.classes,
                "imageWidth": crop.width,
                "imageHeight": crop.height,
            }))
        })
        .collect();
    let mut alerts: Vec<Value> = scene
        .alerts
        .iter()
        .map(|a| {
            json!({
                "type": a.hit.kind.as_str(),
                "description": a.hit.description,
                "riskLevel": a.hit.level.as_str(),
                "confidence": a.hit.confidence,
                "groupIndex": a.group.map(|(index, _)| index),
                "groupId": a.group.map(|(_, id)| id),
                "riskTypes": [a.hit.kind.as_str()],
                "triggerObjectIds": a.hit.track_ids,
                "source": "rules",
                "startedAt": r.wall_time(a.started_at),
                "isStale": a.stale,
            })
        })
        .collect();
    if let Some((v, fresh)) = r.llm {
        for (f, id, index) in &llm_findings {
            let kind = f
                .risk_types
                .first()
                .map_or("llm_assessment", String::as_str);
            alerts.push(json!({
                "type": kind,
                "description": f.description,
                "riskLevel": f.level.as_str(),
                "confidence": f.confidence,
                "groupIndex": index,
                "groupId": id,
                "riskTypes": f.risk_types,
                "triggerObjectIds": f.trigger_object_ids,
                "source": "llm",
                "startedAt": iso(v.asked_at),
                "isStale": !fresh,
            }));
        }
    }
    let llm_level = llm_findings
        .iter()
        .map(|(f, _, _)| f.level)
        .max()
        .unwrap_or_default();
    let dangerous = !llm_findings.is_empty()
        || scene
            .alerts
            .iter()
            .any(|a| a.hit.kind != RuleKind::Congestion);
    let (llm_latency, llm_model, llm_text) = r.llm.map_or((None, None, None), |(v, _)| {
        (
            Some(v.latency.as_secs_f64()),
            Some(v.model.clone()),
            Some(v.raw_text.clone()),
        )
    });
    let stats = &scene.stats;
    envelope(
        "detection_result",
        json!({
            "cameraId": r.camera_id,
            "timestamp": iso(r.timestamp),
            "streamTime": r.stream_time,
            "frame": frame,
            "imageWidth": r.width,
            "imageHeight": r.height,
            "detectedObjects": objects,
            "trafficGroups": groups,
            "groupImages": images,
            "dangerousDrivingResults": alerts,
            "hasDangerousDriving": dangerous,
            "maxRiskLevel": scene.max_level.max(llm_level).as_str(),
            "processTime": r.process_time,
            "llmLatency": llm_latency,
            "llmModel": llm_model,
            "llmRawText": llm_text,
            "modelType": facts.model_type,
            "supportedClasses": facts.supported_classes,
            "trackingEnabled": facts.tracking_enabled,
            "serverDrawEnabled": false,
            "trafficStats": {
                "vehiclesPerMinute": stats.vehicles_per_minute,
                "personsPerMinute": stats.persons_per_minute,
                "congestionLevel": stats.congestion.as_str(),
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision::BBox;
    use vision::scene::rules::RuleHit;
    use vision::scene::{Alert, Group, RiskLevel, TrafficStats};

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
            llm: None,
        };
        let facts = ModelFacts {
            model_type: "yolov8n".into(),
            supported_classes: vec!["car".into()],
            tracking_enabled: true,
        };
        let v: Value = serde_json::from_str(&detection_result(&r, &facts)).unwrap();
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
