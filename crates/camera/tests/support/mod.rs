//! What the camera crate's integration tests share: paths into `../shared` and the detector they
//! run (the shared YOLOv8n weights, one thread, no spin-waiting).

#![allow(clippy::unwrap_used, dead_code)] // test helpers may panic; not every test uses each

use std::path::{Path, PathBuf};

use vision::{Detector, DetectorOptions};

/// `path` under the shared test data folder beside the checkout.
pub(crate) fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(path)
}

/// The shared YOLOv8n model, every class, confidence 0.35, on one thread.
pub(crate) fn detector() -> Detector {
    Detector::load(&DetectorOptions {
        model: shared("models/yolov8n.onnx"),
        runtime_library: None,
        confidence: 0.35,
        iou: 0.5,
        max_det: 100,
        image_size: 640,
        classes: None,
        threads: 1,
        spinning: false,
    })
    .unwrap()
}
