//! Multi-object tracking (ByteTrack), built from plain synchronous parts: the assignment solver
//! and, as the tracking issue lands, the Kalman filter and the tracker itself.

pub mod assignment;
pub mod kalman;
