//! The `detection_result` message (SPEC section 4) for one analysed frame.

use base64::Engine;
use serde_json::{Value, json};
use vision::Detection;

use crate::http::protocol::{CameraId, envelope};

/// What the service says about itself in every result.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// Model file stem, e.g. `yolov8n`.
    pub model_type: String,
    /// Classes the filter keeps.
    pub supported_classes: Vec<String>,
}

impl ModelFacts {
    /// The facts for the configured model: its file stem and the kept classes.
    pub fn new(model: &crate::config::ModelConfig) -> Self {
        let model_type = model
            .path()
            .file_stem()
            .map_or_else(|| "yolo".to_string(), |s| s.to_string_lossy().into_owned());
        Self {
            model_type,
            supported_classes: model.classes.clone(),
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
    /// Seconds of detection work for this frame.
    pub process_time: f64,
}

/// Builds the `detection_result` message text.
pub fn detection_result(r: &FrameResult<'_>, facts: &ModelFacts) -> String {
    let frame = r.jpeg.map(|jpeg| {
        format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg)
        )
    });
    let objects: Vec<Value> = r
        .detections
        .iter()
        .map(|d| json!({"class": d.label, "confidence": d.confidence, "bbox": d.bbox}))
        .collect();
    envelope(
        "detection_result",
        json!({
            "cameraId": r.camera_id,
            "timestamp": r.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "streamTime": r.stream_time,
            "frame": frame,
            "imageWidth": r.width,
            "imageHeight": r.height,
            "detectedObjects": objects,
            "trafficGroups": [],
            "groupImages": [],
            "dangerousDrivingResults": [],
            "hasDangerousDriving": false,
            "maxRiskLevel": "none",
            "processTime": r.process_time,
            "llmLatency": null,
            "llmModel": null,
            "llmRawText": null,
            "modelType": facts.model_type,
            "supportedClasses": facts.supported_classes,
            "trackingEnabled": false,
            "serverDrawEnabled": false,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision::BBox;

    #[test]
    fn result_has_the_contract_fields() {
        let dets = [Detection {
            label: "car".into(),
            class_id: 2,
            confidence: 0.5,
            bbox: BBox::new(1.0, 2.0, 3.0, 4.0),
        }];
        let ts = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let r = FrameResult {
            camera_id: 5,
            timestamp: ts,
            jpeg: Some(b"\xff\xd8"),
            stream_time: 1.5,
            width: 640,
            height: 360,
            detections: &dets,
            process_time: 0.05,
        };
        let facts = ModelFacts {
            model_type: "yolov8n".into(),
            supported_classes: vec!["car".into()],
        };
        let v: Value = serde_json::from_str(&detection_result(&r, &facts)).unwrap();
        assert_eq!(v["type"], "detection_result");
        let d = &v["data"];
        assert_eq!(d["cameraId"], 5);
        assert_eq!(d["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(d["frame"], "data:image/jpeg;base64,/9g=");
        assert_eq!(d["streamTime"], 1.5);
        assert_eq!(d["detectedObjects"][0]["class"], "car");
        assert_eq!(d["detectedObjects"][0]["bbox"], json!([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(d["maxRiskLevel"], "none");
        assert_eq!(d["serverDrawEnabled"], false);
    }
}
