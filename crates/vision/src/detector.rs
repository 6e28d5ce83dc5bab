//! The detection step: letterbox a frame, run the YOLO model in ONNX Runtime, decode, suppress,
//! and map boxes back to frame pixels. A [`Detector`] owns one session and its buffers; it is
//! `Send` but used from one thread at a time (see [`crate::worker`]). [`one_box_per_vehicle`]
//! drops the weaker of two boxes of different vehicle classes on one vehicle (cameras use it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use serde::Serialize;

use crate::classes::{COCO80, ClassFilter, parse_names_metadata};
use crate::decode::{Candidate, OutputLayout, decode};
use crate::geometry::BBox;
use crate::letterbox::{ImageView, Preprocessor};
use crate::nms::nms;
use crate::runtime::{self, RuntimeError};

/// What a detector needs to know; validated values from the service configuration.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// The ONNX model file.
    pub model: PathBuf,
    /// An explicit ONNX Runtime library (`ORT_DYLIB_PATH`), else it is searched for.
    pub runtime_library: Option<PathBuf>,
    /// Minimum confidence, exclusive.
    pub confidence: f32,
    /// IoU above which a lower-scoring box of the same class is suppressed.
    pub iou: f32,
    /// Most detections kept per image.
    pub max_det: usize,
    /// Input size for models whose input dimensions are dynamic.
    pub image_size: u32,
    /// Class names to keep (any spelling); `None` keeps every class.
    pub classes: Option<Vec<String>>,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per physical core).
    pub threads: usize,
    /// Whether ONNX Runtime's threads spin-wait between operators (its default). Lower latency
    /// for a lone detector; in the service, where decoding and encoding threads need the same
    /// cores, spinning burns CPU they could use.
    pub spinning: bool,
}

/// Why detection could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// ONNX Runtime is missing or broken.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model file does not exist.
    #[error("model file not found: {0}")]
    ModelNotFound(PathBuf),
    /// ONNX Runtime could not load the model.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model path.
        path: PathBuf,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The model loads but is not a detector we understand.
    #[error("unsupported model {path}: {reason}")]
    UnsupportedModel {
        /// The model path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Configured classes the model does not know.
    #[error("classes not in the model: {}", .0.join(", "))]
    UnknownClasses(Vec<String>),
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The frame could not be preprocessed.
    #[error(transparent)]
    Preprocess(#[from] crate::letterbox::PreprocessError),
}

/// One detected object in frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Class name, as the model names it.
    #[serde(rename = "class")]
    pub label: String,
    /// Index of the class in the model.
    #[serde(skip)]
    pub class_id: usize,
    /// Confidence in 0-1.
    pub confidence: f32,
    /// Box in frame pixels, clipped to the frame.
    pub bbox: BBox,
}

/// Time spent in each stage of one detection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Letterbox and tensor fill.
    pub preprocess: Duration,
    /// ONNX Runtime `run`.
    pub inference: Duration,
    /// Decode, NMS and box mapping.
    pub postprocess: Duration,
}

impl Timings {
    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.preprocess + self.inference + self.postprocess
    }
}

/// Detections of one frame with the time they took.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionOutput {
    /// Kept detections, highest confidence first.
    pub detections: Vec<Detection>,
    /// Stage timings.
    pub timings: Timings,
}

/// A loaded YOLO model with its reusable buffers.
pub struct Detector {
    session: Session,
    model: PathBuf,
    input_width: u32,
    input_height: u32,
    class_names: Vec<String>,
    metadata_classes: Option<usize>,
    v8_family: bool,
    filter: ClassFilter,
    confidence: f32,
    iou: f32,
    max_det: usize,
    pre: Preprocessor,
    candidates: Vec<Candidate>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model", &self.model)
            .field("input", &(self.input_width, self.input_height))
            .field("classes", &self.class_names.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads the model, reads its input size, class names and output layout, and runs one
    /// warm-up inference so that a broken model fails here rather than on the first frame.
    pub fn load(opts: &DetectorOptions) -> Result<Self, DetectError> {
        let env = runtime::environment(opts.runtime_library.as_deref())?;
        if !opts.model.is_file() {
            return Err(DetectError::ModelNotFound(opts.model.clone()));
        }
        let load_err = |e: &dyn std::fmt::Display| DetectError::ModelLoad {
            path: opts.model.clone(),
            reason: e.to_string(),
        };
        let mut builder = Session::builder(env).map_err(|e| load_err(&e))?;
        if opts.threads > 0 {
            builder = builder
                .with_intra_threads(opts.threads)
                .map_err(|e| load_err(&e))?;
        }
        if !opts.spinning {
            builder = builder
                .with_intra_op_spinning(false)
                .map_err(|e| load_err(&e))?;
        }
        let session = builder
            .commit_from_file(&opts.model)
            .map_err(|e| load_err(&e))?;
        let unsupported = |reason: String| DetectError::UnsupportedModel {
            path: opts.model.clone(),
            reason,
        };

        let (input_width, input_height) =
            input_size(&session, opts.image_size).map_err(unsupported)?;
        if session.outputs().is_empty() {
            return Err(unsupported("the model has no outputs".into()));
        }
        let (names_meta, v8_family) = match session.metadata() {
            Ok(meta) => (
                meta.custom("names").and_then(|n| parse_names_metadata(&n)),
                meta.custom("task").is_some(),
            ),
            Err(_) => (None, false),
        };
        let metadata_classes = names_meta.as_ref().map(Vec::len);
        let class_names =
            names_meta.unwrap_or_else(|| COCO80.iter().map(|s| (*s).to_string()).collect());
        let filter = match &opts.classes {
            None => ClassFilter::all(class_names.len()),
            Some(wanted) => ClassFilter::from_names(&class_names, wanted)
                .map_err(DetectError::UnknownClasses)?,
        };
        let mut detector = Self {
            session,
            model: opts.model.clone(),
            input_width,
            input_height,
            class_names,
            metadata_classes,
            v8_family,
            filter,
            confidence: opts.confidence,
            iou: opts.iou,
            max_det: opts.max_det,
            pre: Preprocessor::new(),
            candidates: Vec::new(),
        };
        let grey = vec![114u8; 64 * 64 * 3];
        let warm_up = ImageView::new(64, 64, &grey).expect("64x64 RGB buffer");
        detector.detect(warm_up).map_err(|e| match e {
            DetectError::Inference(reason) => unsupported(reason),
            other => other,
        })?;
        Ok(detector)
    }

    /// Detects objects in one RGB frame.
    pub fn detect(&mut self, image: ImageView<'_>) -> Result<DetectionOutput, DetectError> {
        let t0 = Instant::now();
        let lb = self.pre.run(image, self.input_width, self.input_height)?;
        let t1 = Instant::now();

        let shape = [
            1usize,
            3,
            self.input_height as usize,
            self.input_width as usize,
        ];
        let input = TensorRef::from_array_view((shape, self.pre.tensor()))
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let (out_shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Inference(format!("output is not a float tensor: {e}")))?;
        let t2 = Instant::now();

        let layout = OutputLayout::infer(out_shape, self.metadata_classes, self.v8_family)
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        if layout.len() != data.len() || layout.num_classes() != self.class_names.len() {
            return Err(DetectError::Inference(format!(
                "output of {} values does not match its layout {layout:?} and {} class names",
                data.len(),
                self.class_names.len()
            )));
        }
        decode(
            data,
            layout,
            self.confidence,
            &self.filter,
            &mut self.candidates,
        );
        drop(outputs);
        nms(&mut self.candidates, self.iou, self.max_det);
        let detections = self
            .candidates
            .iter()
            .map(|c| Detection {
                label: self.class_names[c.class].clone(),
                class_id: c.class,
                confidence: c.score,
                bbox: lb.to_source(c.bbox),
            })
            .collect();
        let t3 = Instant::now();
        Ok(DetectionOutput {
            detections,
            timings: Timings {
                preprocess: t1 - t0,
                inference: t2 - t1,
                postprocess: t3 - t2,
            },
        })
    }
}

/// The model input `(width, height)`: fixed dimensions from the model, dynamic ones from
/// `fallback`.
fn input_size(session: &Session, fallback: u32) -> Result<(u32, u32), String> {
    let input = session.inputs().first().ok_or("the model has no inputs")?;
    let ValueType::Tensor { shape, .. } = input.dtype() else {
        return Err(format!("input `{}` is not a tensor", input.name()));
    };
    match **shape {
        [_, 3, h, w] => {
            let dim = |d: i64| if d > 0 { d as u32 } else { fallback };
            Ok((dim(w), dim(h)))
        }
        _ => Err(format!(
            "input `{}` has shape {:?}, expected [1, 3, H, W]",
            input.name(),
            &**shape
        )),
    }
}

/// IoU above which two boxes of different vehicle classes are one vehicle. Two vehicles side
/// by side or one behind the other overlap far less, even in dense traffic.
pub const VEHICLE_DUPLICATE_IOU: f32 = 0.7;

/// Drops each road vehicle (as `is_vehicle` says) whose box overlaps a more confident vehicle
/// of another class by more than [`VEHICLE_DUPLICATE_IOU`]; the order of the rest is kept.
pub fn one_box_per_vehicle(detections: &mut Vec<Detection>, is_vehicle: impl Fn(&str) -> bool) {
    let n = detections.len();
    let mut drop = vec![false; n];
    for i in 0..n {
        let a = &detections[i];
        if !is_vehicle(&a.label) {
            continue;
        }
        drop[i] = detections.iter().enumerate().any(|(j, b)| {
            j != i
                && b.class_id != a.class_id
                && is_vehicle(&b.label)
                && (b.confidence > a.confidence || (b.confidence == a.confidence && j < i))
                && b.bbox.iou(&a.bbox) > VEHICLE_DUPLICATE_IOU
        });
    }
    let mut k = 0;
    detections.retain(|_| {
        k += 1;
        !drop[k - 1]
    });
}

#[cfg(test)]
mod vehicle_tests {
    use super::*;

    fn det(label: &str, class_id: usize, x: f32, confidence: f32) -> Detection {
        Detection {
            label: label.into(),
            class_id,
            confidence,
            bbox: BBox::new(x, 0.0, x + 100.0, 50.0),
        }
    }

    #[test]
    fn one_vehicle_reported_as_car_and_truck_keeps_the_better_box() {
        let vehicle = |l: &str| matches!(l, "car" | "truck" | "bus");
        let mut d = vec![
            det("car", 2, 0.0, 0.6),
            det("truck", 7, 3.0, 0.8), // IoU 0.94 with the car: the same vehicle
            det("car", 2, 60.0, 0.7),  // IoU 0.25: the next car
            det("person", 0, 1.0, 0.9), // not a vehicle
            det("bus", 5, 200.0, 0.5),
        ];
        one_box_per_vehicle(&mut d, vehicle);
        let labels: Vec<(&str, f32)> = d.iter().map(|d| (d.label.as_str(), d.bbox.x1)).collect();
        assert_eq!(
            labels,
            vec![
                ("truck", 3.0),
                ("car", 60.0),
                ("person", 1.0),
                ("bus", 200.0)
            ]
        );
        // Same class is NMS's business, not this.
        let mut d = vec![det("car", 2, 0.0, 0.6), det("car", 2, 1.0, 0.8)];
        one_box_per_vehicle(&mut d, vehicle);
        assert_eq!(d.len(), 2);
    }
}
