//! Cameras: frame sources, the decode policy, the per-camera pipeline and the hub that shares
//! cameras between WebSocket clients.

pub mod check;
pub mod decode;
pub mod evidence;
pub mod file;
pub mod hub;
pub mod mjpeg;
pub mod pipeline;
pub mod result;
pub mod sampler;
pub mod source;
pub mod state;
pub mod store;
