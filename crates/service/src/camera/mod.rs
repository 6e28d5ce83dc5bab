//! Cameras: frame sources, the decode policy, the per-camera pipeline and the hub that shares
//! cameras between WebSocket clients.

pub mod sampler;
