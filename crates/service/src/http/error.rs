//! The JSON envelope `{"code", "msg", "data"}` that every HTTP answer uses; errors carry the HTTP
//! status as `code` and a message that reveals nothing internal.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::api::Envelope;
use serde::Serialize;

/// A success envelope around `data`.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope::ok(data)).into_response()
}

/// An error envelope with `status`.
pub fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(Envelope::error(status.as_u16(), msg))).into_response()
}

/// Fallback for unknown paths.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}

/// Fallback for a known path with the wrong method.
pub async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
