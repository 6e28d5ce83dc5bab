//! Glue between configuration and the vision crate: detector options and the inference
//! sessions from [`ModelConfig`], the scene (tracker, grouping, rules) from the whole
//! [`Config`], and the JSON shape of one image's detections (`detect` output).

use anyhow::Context;
use serde::Serialize;
use vision::scene::SceneConfig;
use vision::tracker::byte_track::ByteTrackConfig;
use vision::worker::InferenceWorker;
use vision::{Detection, Detector, DetectorOptions};

use crate::config::{Config, ModelConfig};

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

/// The lowest score the tracker takes: ByteTrack's floor for its second association, where a
/// detection too unsure to be reported on its own may still continue a confirmed track.
pub const TRACK_FLOOR: f32 = 0.1;

/// Detector options of the camera pipeline (the service, `analyze`, `eval`): with tracking on,
/// the detector keeps boxes down to [`TRACK_FLOOR`] for the tracker, and the scene drops those
/// below `model.confidence_threshold` that no track takes ([`SceneConfig::min_confidence`]).
pub fn pipeline_detector_options(config: &Config) -> DetectorOptions {
    let mut options = detector_options(&config.model, false);
    if config.tracking.enabled {
        options.confidence = options.confidence.min(TRACK_FLOOR);
    }
    options
}

/// The service's inference threads: [`ModelConfig::layout`] sessions of the chosen model, each
/// with its share of the cores, none spin-waiting (camera threads decode and encode on the same
/// cores), all taking frames from one queue of `queue` jobs (at least one per session).
pub fn inference_pool(config: &Config, queue: usize) -> anyhow::Result<InferenceWorker> {
    inference_pool_of(config, config.model.layout(), queue)
}

/// [`inference_pool`] with `(sessions, threads)` given (`bench detect` compares layouts).
pub fn inference_pool_of(
    config: &Config,
    (sessions, threads): (usize, usize),
    queue: usize,
) -> anyhow::Result<InferenceWorker> {
    let mut options = pipeline_detector_options(config);
    options.threads = threads;
    options.spinning = false;
    let detectors = (0..sessions)
        .map(|_| Detector::load(&options))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(sessions, threads, "inference sessions");
    InferenceWorker::spawn_pool(detectors, queue.max(sessions))
        .context("cannot start the inference threads")
}

/// The scene of every camera. ByteTrack's parameters are expressed in frames of a
/// `tracking.frame_rate` video; one analysed frame stands for `frame_interval x frame_rate` of
/// them, which sets the motion noise and how many analysed frames a lost track is kept
/// (`track_buffer / frame_rate` seconds, at least one frame).
pub fn scene_config(config: &Config) -> SceneConfig {
    let t = &config.tracking;
    let interval = config.stream.frame_interval.as_secs_f64();
    let lost_seconds = f64::from(t.track_buffer) / f64::from(t.frame_rate);
    SceneConfig {
        tracking: t.enabled,
        tracker: ByteTrackConfig {
            track_thresh: t.track_thresh,
            low_thresh: TRACK_FLOOR,
            match_thresh: t.match_thresh,
            max_lost_frames: (lost_seconds / interval).ceil().max(1.0) as u32,
            motion_steps: interval * f64::from(t.frame_rate),
            max_jump: t.max_jump,
        },
        grouping: config.grouping,
        rules: config.rules,
        alert_hold: config.stream.alert_pause.as_secs_f64(),
        frame_interval: interval,
        min_confidence: config.model.confidence,
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
