//! What the service sends over `/ws` (SPEC section 4): every message is
//! `{"type": <snake_case name>, "data": {...}}`, which serde's adjacent tagging of
//! [`ServerMessage`] produces.

use serde::{Deserialize, Serialize};

use crate::CameraId;
use crate::detection::DetectionResult;

/// A message from the service to a WebSocket client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message of every connection.
    ConnectionAck(ConnectionAck),
    /// The answer to `ping` (`data` is `{}`).
    Pong(Empty),
    /// A camera's connection state, on every change and in answer to `check_camera`.
    CameraStatus(CameraStatus),
    /// The analysis of one frame.
    DetectionResult(Box<DetectionResult>),
    /// A camera stopped for this client.
    StreamStopped(StreamStopped),
    /// A request could not be served; the connection stays open.
    Error(ErrorMessage),
}

impl ServerMessage {
    /// `connection_ack` with the contract's text.
    pub fn connection_ack() -> Self {
        Self::ConnectionAck(ConnectionAck {
            message: "WS connected (pipeline ready)".into(),
        })
    }

    /// `pong`.
    pub fn pong() -> Self {
        Self::Pong(Empty {})
    }

    /// `stream_stopped` for `camera_id` with `reason`.
    pub fn stream_stopped(camera_id: CameraId, reason: &str) -> Self {
        Self::StreamStopped(StreamStopped {
            camera_id,
            reason: reason.into(),
        })
    }

    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConnectionAck(_) => "connection_ack",
            Self::Pong(_) => "pong",
            Self::CameraStatus(_) => "camera_status",
            Self::DetectionResult(_) => "detection_result",
            Self::StreamStopped(_) => "stream_stopped",
            Self::Error(_) => "error",
        }
    }
}

/// An empty object, `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `connection_ack.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionAck {
    /// `WS connected (pipeline ready)`.
    pub message: String,
}

/// Connection state of a camera (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// Opening the source for the first time.
    Connecting,
    /// Frames are arriving.
    Online,
    /// The source failed; retrying with backoff.
    Reconnecting,
    /// Stopped.
    Offline,
}

impl CameraState {
    /// The state's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
        }
    }
}

/// `camera_status.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CameraStatus {
    /// Camera id.
    pub camera_id: CameraId,
    /// 1 when online, else 0.
    pub status: u8,
    /// The state.
    pub state: CameraState,
    /// Why it is in that state.
    pub message: String,
    /// `check_camera` only: milliseconds to the first decoded frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl CameraStatus {
    /// The status of `camera_id` in `state`; `status` follows the state.
    pub fn new(camera_id: CameraId, state: CameraState, message: &str) -> Self {
        Self {
            camera_id,
            status: u8::from(state == CameraState::Online),
            state,
            message: message.into(),
            latency_ms: None,
        }
    }
}

/// `stream_stopped.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStopped {
    /// Camera id.
    pub camera_id: CameraId,
    /// Stopped by client, source ended, too many failures, shutdown.
    pub reason: String,
}

/// The error codes of SPEC section 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, binary, or too large.
    InvalidJson,
    /// `type` names no known message.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong type or value.
    InvalidField,
    /// The URL's scheme or host is not allowed.
    SourceNotAllowed,
    /// `max_concurrent_streams` cameras already run.
    TooManyStreams,
    /// No such camera.
    UnknownCamera,
    /// Missing or wrong token.
    Unauthorized,
    /// More messages than `server.ws_messages_per_second` allows (beyond SPEC 4's list).
    RateLimited,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::UnknownType => "unknown_type",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::SourceNotAllowed => "source_not_allowed",
            Self::TooManyStreams => "too_many_streams",
            Self::UnknownCamera => "unknown_camera",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// `error.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    /// The code.
    pub code: ErrorCode,
    /// A plain explanation.
    pub message: String,
    /// The camera concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<CameraId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_message_has_the_envelope() {
        let text = |m: ServerMessage| serde_json::to_value(m).unwrap();
        assert_eq!(
            text(ServerMessage::connection_ack()),
            json!({"type": "connection_ack", "data": {"message": "WS connected (pipeline ready)"}})
        );
        assert_eq!(
            text(ServerMessage::pong()),
            json!({"type": "pong", "data": {}})
        );
        assert_eq!(
            text(ServerMessage::stream_stopped(4, "Stopped by client")),
            json!({"type": "stream_stopped", "data": {"cameraId": 4, "reason": "Stopped by client"}})
        );
        let mut status = CameraStatus::new(2, CameraState::Online, "streaming");
        assert_eq!(
            text(ServerMessage::CameraStatus(status.clone())),
            json!({"type": "camera_status", "data": {"cameraId": 2, "status": 1, "state": "online", "message": "streaming"}})
        );
        status = CameraStatus {
            latency_ms: Some(40),
            ..CameraStatus::new(2, CameraState::Offline, "refused")
        };
        assert_eq!(
            text(ServerMessage::CameraStatus(status))["data"],
            json!({"cameraId": 2, "status": 0, "state": "offline", "message": "refused", "latencyMs": 40})
        );
    }

    #[test]
    fn messages_read_back_as_they_were() {
        let m = ServerMessage::stream_stopped(9, "Source ended");
        let back: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.kind(), "stream_stopped");
    }
}
