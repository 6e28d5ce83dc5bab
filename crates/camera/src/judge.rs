//! The step shared by the live pipeline and `analyze`: the frame's picture checked
//! ([`PictureWatch`]: frozen, cut, camera moved), its detections through the camera's scene
//! (tracks, groups, rules), then its evidence (each group's crop, the frame as JPEG) and its
//! `detection_result`.

use std::time::Instant;

use imaging::{EncodeError, GroupCrop, JPEG_QUALITY, RgbFrame, crop_jpeg, encode_jpeg};
use protocol::{CameraId, DetectionResult, RiskLevel};
use vision::Detection;
use vision::sanity::{PictureVerdict, PictureWatch, Thumbnail};
use vision::scene::{Scene, SceneFrame};

use crate::result::{FrameResult, ModelFacts, detection_result};

/// The `camera_status` message of a camera whose picture froze (SPEC 9); the state stays.
pub const PICTURE_FROZEN: &str = "picture frozen";
/// The `camera_status` message of a camera whose frozen picture moves again.
pub const PICTURE_MOVING: &str = "picture moving again";

/// One decoded frame to judge.
#[derive(Debug)]
pub struct FrameInput<'a> {
    /// Camera id.
    pub camera_id: CameraId,
    /// The decoded frame.
    pub frame: &'a RgbFrame,
    /// Stream time of the frame, seconds.
    pub stream_time: f64,
    /// The frame's detections.
    pub detections: &'a [Detection],
    /// When work on the frame started (for `processTime`).
    pub started: Instant,
    /// Whether to inline the frame itself as JPEG.
    pub with_frame: bool,
}

/// A judged frame.
#[derive(Debug)]
pub struct Judged {
    /// The frame's `detection_result`, from the rules.
    pub result: DetectionResult,
    /// What the scene said.
    pub scene: SceneFrame,
    /// Each group's crop (`None`: empty region).
    pub crops: Vec<Option<GroupCrop>>,
    /// The frame as JPEG, when it was inlined.
    pub jpeg: Option<Vec<u8>>,
    /// When the frame was judged (the result's `timestamp`).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// What the picture did (a freeze beginning or ending is the caller's to report).
    pub picture: PictureVerdict,
}

/// Whether `result` raises a `high` alert on this very frame (not carried over): the alert
/// pause then applies to the camera's next sample.
pub fn fresh_high(result: &DetectionResult) -> bool {
    result
        .dangerous_driving_results
        .iter()
        .any(|a| a.risk_level == RiskLevel::High && !a.is_stale)
}

/// Checks the frame's picture, runs the scene on its detections, encodes the evidence and
/// builds the result. A picture the watch does not trust (repeated, frozen, cut, moved, or
/// settling after one of those) still goes through the scene, with its alerts held: tracks keep
/// their ids through a freeze, the result still shows what is in the picture, and the watchers
/// keep getting results; but a repeated picture, which the rules would read as every vehicle
/// stopping dead, and a jump, read as every vehicle leaping, raise nothing. A cut restarts the
/// scene first: its tracks belong to the other picture.
pub fn judge_frame(
    scene: &mut Scene,
    watch: &mut PictureWatch,
    facts: &ModelFacts,
    input: &FrameInput<'_>,
) -> Result<Judged, EncodeError> {
    let frame = input.frame;
    let picture = watch.observe(input.stream_time, Thumbnail::of(frame.view()));
    if picture.restarts_scene() {
        scene.restart();
    }
    if picture.holds_alerts() {
        scene.hold_alerts(input.stream_time);
    }
    let judged = scene.update(
        input.stream_time,
        frame.width,
        frame.height,
        input.detections,
    );
    let process_time = input.started.elapsed().as_secs_f64();
    let crops = judged
        .groups
        .iter()
        .map(|g| crop_jpeg(frame, g.crop))
        .collect::<Result<Vec<_>, _>>()?;
    let jpeg = if input.with_frame {
        Some(encode_jpeg(frame, JPEG_QUALITY)?)
    } else {
        None
    };
    let timestamp = chrono::Utc::now();
    let result = detection_result(
        &FrameResult {
            camera_id: input.camera_id,
            timestamp,
            jpeg: jpeg.as_deref(),
            stream_time: input.stream_time,
            width: frame.width,
            height: frame.height,
            detections: &judged.detections,
            scene: &judged,
            crops: &crops,
            process_time,
        },
        facts,
    );
    Ok(Judged {
        result,
        scene: judged,
        crops,
        jpeg,
        timestamp,
        picture,
    })
}
