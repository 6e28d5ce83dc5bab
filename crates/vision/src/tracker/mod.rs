//! Multi-object tracking (ByteTrack), built from plain synchronous parts: the assignment solver,
//! the Kalman filter and the tracker that ties them together.

pub mod assignment;
pub mod byte_track;
pub mod kalman;
