//! The wire types of traffic-algo (SPEC sections 3 and 4): what the service says to dashboards
//! and what they may say to it. Types only, with serde doing the encoding; the only code here
//! is reading a client message into [`client::ClientMessage`] with the contract's error codes.
//! Nothing here does I/O, and the layers above (camera, llm, streaming, service) build these
//! values; only the service's HTTP layer turns them into text.
//!
//! Layout:
//! - [`client`]: messages a WebSocket client sends and their parser.
//! - [`server`]: messages the service sends over `/ws` (`camera_status`, `stream_stopped`,
//!   `error` with its codes, ...).
//! - [`detection`]: `detection_result`, the analysis of one frame.
//! - [`api`]: HTTP bodies: the `{code, msg, data}` envelope, health, the camera list.

pub mod api;
pub mod client;
pub mod detection;
pub mod server;

pub use client::{ClientMessage, ProtocolError};
pub use detection::DetectionResult;
pub use server::{ErrorCode, ServerMessage};
pub use vision::scene::RiskLevel;

/// A camera id as clients send it (SPEC section 4: a non-negative integer).
pub type CameraId = i64;
