//! `GET`, `PUT` and `DELETE /api/cameras/{id}/scene` (SPEC section 9): a camera's scene
//! geometry, whether or not the camera runs. `PUT` takes the scene as JSON in the shape of a
//! scene file, checks every field (a 400 names the first bad one and changes nothing), saves it
//! to the scenes folder and applies it to the running camera at its next frame. Answers carry
//! the calibration's reprojection error.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use protocol::CameraId;
use vision::scene::layout::SceneSpec;

use super::AppState;
use super::error::{error, ok};
use crate::scenes::SceneError;

/// The camera id of the path.
fn camera_id(raw: &str) -> Option<CameraId> {
    raw.parse::<CameraId>().ok().filter(|id| *id >= 0)
}

/// The 400 for a path that names no camera.
fn not_a_camera(raw: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &format!("`{raw}` is not a camera id"),
    )
}

/// `GET`: the scene and its source; 404 when the camera has none.
pub async fn get_scene(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some(id) = camera_id(&raw) else {
        return not_a_camera(&raw);
    };
    match state.scenes.get(id) {
        Some(view) => ok(view),
        None => error(StatusCode::NOT_FOUND, &format!("camera {id} has no scene")),
    }
}

/// `PUT`: replaces the scene.
pub async fn put_scene(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = camera_id(&raw) else {
        return not_a_camera(&raw);
    };
    let spec: SceneSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, &format!("invalid scene JSON: {e}"));
        }
    };
    match state.scenes.put(id, &spec) {
        Ok(view) => ok(view),
        Err(SceneError::Invalid(msg)) => error(StatusCode::BAD_REQUEST, &msg),
        Err(e @ SceneError::Save(_)) => {
            tracing::error!(camera = id, error = %e, "scene not saved");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot save the scene")
        }
    }
}

/// `DELETE`: forgets the scene set through the API or the scenes folder; 404 when there was
/// none.
pub async fn delete_scene(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let Some(id) = camera_id(&raw) else {
        return not_a_camera(&raw);
    };
    match state.scenes.delete(id) {
        Ok(true) => ok(state.scenes.get(id)),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("camera {id} has no scene set through the API or the scenes folder"),
        ),
        Err(e) => {
            tracing::error!(camera = id, error = %e, "scene not removed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot remove the scene")
        }
    }
}
