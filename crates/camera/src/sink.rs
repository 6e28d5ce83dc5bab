//! Where a camera's output goes besides its watchers. The pipeline hands every analysed frame
//! to each [`FrameSink`] in turn (a typed [`FrameReport`] plus the frame's
//! [`DetectionResult`], which a sink may add to: the LLM attaches its findings, streaming mode
//! its detection id), then broadcasts the result. Sinks also hear each camera's
//! [`CameraEvent`]s (frames received, decoded and dropped, reconnects, failures, what the
//! picture did), which is how the service counts them without this crate knowing any metric.

use std::time::Duration;

use imaging::{GroupCrop, RgbFrame};
use protocol::{CameraId, DetectionResult};
use vision::scene::measure::Measure;
use vision::scene::{Alert, SceneFrame};

/// One analysed frame, as the pipeline saw it.
#[derive(Debug)]
pub struct FrameReport<'a> {
    /// Camera id.
    pub camera_id: CameraId,
    /// The decoded frame.
    pub frame: &'a RgbFrame,
    /// The frame as JPEG, when it was encoded (the live pipeline always encodes it).
    pub jpeg: Option<&'a [u8]>,
    /// Stream time of the frame, seconds since its connection started.
    pub stream_time: f64,
    /// When the frame was judged (the result's `timestamp`).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// What the camera's scene made of the frame's detections (`scene.detections`, in frame
    /// pixels): tracks, groups, rule alerts, counters.
    pub scene: &'a SceneFrame,
    /// The crop of each of `scene.groups` (`None`: empty region).
    pub crops: &'a [Option<GroupCrop>],
    /// Where the frame's time went until now.
    pub times: StageTimes,
}

/// Where one frame's time went, from the arrival of its sample to its result judged; the
/// stages follow one another, so their sum is the frame's age when the sinks get it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// From the sample's arrival to its picture decoded (the wait for the camera's analysis
    /// thread included).
    pub decode: Duration,
    /// Waiting for a free inference session.
    pub queue: Duration,
    /// The detector's run: pre-processing, the model, post-processing.
    pub inference: Duration,
    /// Tracking, grouping, rules, the crops and the frame's JPEG.
    pub judge: Duration,
}

impl StageTimes {
    /// The detector's time, the wait for a session included.
    pub fn detect(&self) -> Duration {
        self.queue + self.inference
    }

    /// The stages with their names (the `stage` label of `frame_stage_seconds`).
    pub fn named(&self) -> [(&'static str, Duration); 4] {
        [
            ("decode", self.decode),
            ("queue", self.queue),
            ("inference", self.inference),
            ("judge", self.judge),
        ]
    }
}

impl FrameReport<'_> {
    /// Rule alerts that started on this frame (not carried over from an earlier one).
    pub fn new_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.scene
            .alerts
            .iter()
            .filter(|a| !a.stale && a.started_at == self.stream_time)
    }
}

/// A stage of a camera's work that can fail (the `stage` of `pipeline_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Opening or reading the source.
    Source,
    /// H.264 decoding.
    Decode,
    /// The detector refused a frame.
    Detect,
    /// JPEG encoding of the frame or a crop.
    Encode,
    /// The inference thread is gone.
    Inference,
    /// The camera's analysis could not run at all.
    Analysis,
}

impl Stage {
    /// The stage's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Decode => "decode",
            Self::Detect => "detect",
            Self::Encode => "encode",
            Self::Inference => "inference",
            Self::Analysis => "analysis",
        }
    }
}

/// Something that happened to a camera, other than an analysed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraEvent {
    /// The camera joined the hub (not on a restart with a new URL).
    Added,
    /// Encoded frames arrived from the source.
    FramesReceived(u64),
    /// Frames were decoded.
    FramesDecoded(u64),
    /// Frames due for analysis were dropped (analysis busy, or the sampler's buffer full).
    FramesDropped(u64),
    /// The source failed and will be reopened.
    Reconnecting,
    /// A stage failed.
    Failed(Stage),
    /// The picture did something that is not traffic (see `vision::sanity`).
    Picture(PictureEvent),
    /// The camera left the hub: nothing more will be heard of it.
    Removed,
}

/// What a camera's picture did, as its analysis saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PictureEvent {
    /// The picture froze (unchanged for seconds).
    Froze,
    /// The frozen picture moves again (or the stream started over).
    Thawed,
    /// The picture was replaced by another: a scene cut.
    Cut,
    /// The whole picture shifted: the camera moved or shook.
    Moved,
    /// An analysed frame's rule alerts were held (the picture was repeated, frozen, cut,
    /// moved, or settling after one of those).
    AlertsHeld,
}

/// A sink's problem with a frame, shown as the camera's last error (the sink has already
/// counted and, if it wished, logged it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A consumer of analysed frames and camera events. Called on the camera's analysis thread (or
/// its source task, for events): a sink must not block; slow work goes to its own task or
/// thread through a bounded queue.
pub trait FrameSink: Send + Sync {
    /// An analysed frame, before `result` goes to the watchers; the sink may add to `result`.
    /// An error does not stop the frame: it becomes the camera's last error.
    fn frame(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
    ) -> Result<(), SinkError>;

    /// Something happened to camera `camera`.
    fn event(&self, camera: CameraId, event: CameraEvent) {
        let _ = (camera, event);
    }

    /// Camera `camera`'s analysis ended (stopped, or its source ended) with its tracks still
    /// open: `measures` are their last movements and lane passes, the stream having reached
    /// `stream_time`. Comes after [`CameraEvent::Removed`] when the hub stopped the camera.
    fn ended(&self, camera: CameraId, measures: &[Measure], stream_time: f64) {
        let _ = (camera, measures, stream_time);
    }
}
