//! Synchronous computer vision for traffic-algo. No async runtime here: every function is plain
//! computation (or, for the detector, a call into ONNX Runtime) that callers run on threads they
//! own.
//!
//! Layout:
//! - [`geometry`]: pixel boxes and IoU.
//! - [`calibration`]: image pixels to ground metres (homography) and its reprojection error.
//! - [`letterbox`]: resize-and-pad into the model input and the inverse box mapping.
//! - [`decode`]: the YOLO output layouts and candidate extraction.
//! - [`nms`]: class-aware non-maximum suppression.
//! - [`classes`]: COCO names, model metadata names, the class filter.
//! - [`runtime`]: locating and loading ONNX Runtime.
//! - [`detector`]: the whole detection step around one ONNX Runtime session.
//! - [`tracker`]: multi-object tracking: ByteTrack, its Kalman filter and assignment.
//! - [`scene`]: one camera's judgement over time: track histories, traffic groups, danger
//!   rules, alert persistence and traffic counters.
//! - [`sanity`]: whether the picture shows traffic at all: frozen, cut, camera moved.
//! - [`worker`]: the inference thread that owns a detector.

pub mod calibration;
pub mod classes;
pub mod decode;
pub mod detector;
pub mod geometry;
pub mod letterbox;
pub mod nms;
pub mod runtime;
pub mod sanity;
pub mod scene;
pub mod tracker;
pub mod worker;

pub use detector::{DetectError, Detection, DetectionOutput, Detector, DetectorOptions, Timings};
pub use geometry::BBox;
pub use letterbox::ImageView;
