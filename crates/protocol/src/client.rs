//! What a WebSocket client may send (SPEC section 4): [`ClientMessage`], read by [`parse`] with
//! the exact error codes of the contract ([`ErrorCode`]). Pure, so every rule is unit-tested.

use serde_json::Value;

use crate::CameraId;
use crate::server::{ErrorCode, ErrorMessage, ServerMessage};

/// Largest accepted client message (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Longest accepted camera URL.
pub const MAX_URL_LEN: usize = 2048;

/// A parsed client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `ping`: answered with `pong`.
    Ping,
    /// `start_stream`: start (or restart with a new URL) a camera and watch it.
    StartStream {
        /// Camera id.
        camera_id: CameraId,
        /// Source URL.
        url: String,
    },
    /// `stop_stream`: stop watching; the camera stops when nobody watches.
    StopStream {
        /// Camera id.
        camera_id: CameraId,
    },
    /// `check_camera`: can the URL be opened and decoded within 5 s?
    CheckCamera {
        /// Camera id (echoed back).
        camera_id: CameraId,
        /// Source URL.
        url: String,
    },
    /// `subscribe`: watch a camera another client started.
    Subscribe {
        /// Camera id.
        camera_id: CameraId,
    },
    /// `unsubscribe`: stop watching; `stream_stopped` only when the camera stopped because this
    /// was its last watcher.
    Unsubscribe {
        /// Camera id.
        camera_id: CameraId,
    },
}

impl ClientMessage {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::StartStream { .. } => "start_stream",
            Self::StopStream { .. } => "stop_stream",
            Self::CheckCamera { .. } => "check_camera",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
        }
    }
}

/// An error to send back as an `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// The code.
    pub code: ErrorCode,
    /// A plain explanation for the client.
    pub message: String,
    /// The camera concerned, when known.
    pub camera_id: Option<CameraId>,
}

impl ProtocolError {
    /// An error without a camera.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            camera_id: None,
        }
    }

    /// The same error about `camera_id`.
    pub fn for_camera(mut self, camera_id: CameraId) -> Self {
        self.camera_id = Some(camera_id);
        self
    }

    /// The `error` message for the client.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error(ErrorMessage {
            code: self.code,
            message: self.message.clone(),
            camera_id: self.camera_id,
        })
    }
}

/// Parses one text message.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::InvalidJson,
            "message larger than 1 MiB",
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidJson,
            "expected an object {\"type\": ..., \"data\": {...}}",
        ));
    };
    let ty = match obj.get("type") {
        None | Some(Value::Null) => return Err(missing("type")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("type", "must be a string")),
    };
    if ty == "ping" {
        return Ok(ClientMessage::Ping);
    }
    if !matches!(
        ty,
        "start_stream" | "stop_stream" | "check_camera" | "subscribe" | "unsubscribe"
    ) {
        return Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown type `{ty}`"),
        ));
    }
    let data = match obj.get("data") {
        None | Some(Value::Null) => return Err(missing("data")),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(invalid("data", "must be an object")),
    };
    let camera_id = camera_id(data)?;
    let url = || source_url(data).map_err(|e| e.for_camera(camera_id));
    Ok(match ty {
        "start_stream" => ClientMessage::StartStream {
            camera_id,
            url: url()?,
        },
        "check_camera" => ClientMessage::CheckCamera {
            camera_id,
            url: url()?,
        },
        "stop_stream" => ClientMessage::StopStream { camera_id },
        "subscribe" => ClientMessage::Subscribe { camera_id },
        _ => ClientMessage::Unsubscribe { camera_id },
    })
}

fn missing(field: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::MissingField, format!("`{field}` is required"))
}

fn invalid(field: &str, why: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidField, format!("`{field}` {why}"))
}

/// `cameraId`: a non-negative integer (an integer in a string is accepted, as the original's
/// front end sends either).
fn camera_id(data: &serde_json::Map<String, Value>) -> Result<CameraId, ProtocolError> {
    let id = match data.get("cameraId") {
        None | Some(Value::Null) => return Err(missing("cameraId")),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match id {
        Some(id) if id >= 0 => Ok(id),
        _ => Err(invalid("cameraId", "must be a non-negative integer")),
    }
}

fn source_url(data: &serde_json::Map<String, Value>) -> Result<String, ProtocolError> {
    match data.get("rtspUrl") {
        None | Some(Value::Null) => Err(missing("rtspUrl")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(invalid("rtspUrl", "is empty")),
        Some(Value::String(s)) if s.len() > MAX_URL_LEN => {
            Err(invalid("rtspUrl", "is longer than 2048 characters"))
        }
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(_) => Err(invalid("rtspUrl", "must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse(text).unwrap_err().code
    }

    #[test]
    fn valid_messages_parse() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(
            parse(r#"{"type":"ping","data":42}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse(r#"{"type":"start_stream","data":{"cameraId":3,"rtspUrl":" rtsp://h/x "}}"#),
            Ok(ClientMessage::StartStream {
                camera_id: 3,
                url: "rtsp://h/x".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"stop_stream","data":{"cameraId":"7"}}"#),
            Ok(ClientMessage::StopStream { camera_id: 7 })
        );
        assert_eq!(
            parse(r#"{"type":"check_camera","data":{"cameraId":1,"rtspUrl":"rtsp://a"}}"#),
            Ok(ClientMessage::CheckCamera {
                camera_id: 1,
                url: "rtsp://a".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"subscribe","data":{"cameraId":2}}"#),
            Ok(ClientMessage::Subscribe { camera_id: 2 })
        );
        assert_eq!(
            parse(r#"{"type":"unsubscribe","data":{"cameraId":2}}"#),
            Ok(ClientMessage::Unsubscribe { camera_id: 2 })
        );
    }

    #[test]
    fn each_bad_input_has_its_code() {
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"data":{}}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":5}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"launch_rockets","data":{}}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"type":"subscribe","data":"x"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"subscribe","data":{}}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"type":"subscribe","data":{"cameraId":-1}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"subscribe","data":{"cameraId":1.5}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"subscribe","data":{"cameraId":true}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"start_stream","data":{"cameraId":1}}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            code(r#"{"type":"start_stream","data":{"cameraId":1,"rtspUrl":7}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"start_stream","data":{"cameraId":1,"rtspUrl":""}}"#),
            ErrorCode::InvalidField
        );
        let long = format!(
            r#"{{"type":"ping","data":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&long), ErrorCode::InvalidJson);
    }

    #[test]
    fn url_errors_carry_the_camera_id() {
        let e = parse(r#"{"type":"start_stream","data":{"cameraId":9}}"#).unwrap_err();
        assert_eq!(e.camera_id, Some(9));
        let msg = serde_json::to_value(e.to_message()).unwrap();
        assert_eq!(msg["type"], "error");
        assert_eq!(msg["data"]["code"], "missing_field");
        assert_eq!(msg["data"]["cameraId"], 9);
    }
}
