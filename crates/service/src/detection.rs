//! Glue between configuration and the detector: options from [`ModelConfig`], and the JSON shape
//! of one image's detections (`detect` output).

use serde::Serialize;
use vision::{Detection, DetectorOptions};

use crate::config::ModelConfig;

/// Detector options from the configuration; `all_classes` ignores `classes.include`.
pub fn detector_options(model: &ModelConfig, all_classes: bool) -> DetectorOptions {
    DetectorOptions {
        model: model.path(),
        runtime_library: model.runtime_library.clone(),
        confidence: model.confidence,
        iou: model.iou,
        max_det: model.max_det,
        image_size: model.image_size,
        classes: (!all_classes).then(|| model.classes.clone()),
        threads: model.threads,
        spinning: true,
    }
}

/// One line of `detect` output.
#[derive(Debug, Serialize)]
pub struct ImageDetections<'a> {
    /// The image path as given.
    pub image: &'a str,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Detections, highest confidence first.
    #[serde(rename = "detectedObjects")]
    pub detected_objects: &'a [Detection],
    /// Seconds spent in preprocessing, inference and postprocessing.
    #[serde(rename = "processTime")]
    pub process_time: f64,
}
