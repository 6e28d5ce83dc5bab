//! Cameras: where frames come from and what happens to them until a `detection_result` leaves
//! for the watchers. Knows nothing of HTTP, the LLM or Kafka: each analysed frame and camera
//! event goes to the [`sink::FrameSink`]s the service plugs in.
//!
//! Layout, from the wire up:
//! - [`source`]: opening a camera URL (RTSP through `retina`, HTTP MJPEG, MP4 files) under the
//!   [`source::SourcePolicy`].
//! - [`sampler`]: which encoded frames to decode, one sample per `frame_interval`.
//! - [`video`]: H.264 (OpenH264) and MJPEG pictures to RGB.
//! - [`result`]: the rules' `detection_result` of one frame; [`judge`]: scene, evidence and
//!   result of one frame (shared with `analyze`).
//! - [`sink`]: what the pipeline hands out: [`sink::FrameReport`], [`sink::CameraEvent`].
//! - [`pipeline`]: one camera's source task and analysis thread.
//! - [`hub`]: the cameras the service runs, shared by their watchers; [`broadcast`]: what
//!   they hear.
//! - [`check`]: `check_camera`'s probe.
//! - [`layout`]: each camera's live scene geometry.

pub mod broadcast;
pub mod check;
pub mod hub;
pub mod judge;
pub mod layout;
pub mod pipeline;
pub mod result;
pub mod sampler;
pub mod sink;
pub mod source;
pub mod video;
