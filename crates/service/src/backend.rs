//! The link to the Spring Boot backend (used when `backend.base_url` is set): every
//! `backend.refresh_seconds` it fetches the camera list and starts or stops the cameras it
//! declares; every `backend.stats_interval_seconds` it posts per-camera statistics (with the
//! line counts and lane speeds of the window when measurement is on). The
//! backend's exact contract is not known, so paths and field names are configuration, and the
//! list may be a bare array or wrapped in `{"data": [...]}` / `{"data": {"records"|"list"|
//! "content": [...]}}`. A backend that is down or answers nonsense is logged and retried; it
//! never stops the service.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::BackendConfig;
use crate::config::cameras::CameraDecl;
use crate::declared::Declared;
use crate::measure::sink::MeasureSink;
use crate::measure::window::WindowStats;
use crate::scenes::SceneBook;
use camera::hub::CameraHub;
use protocol::CameraId;
use protocol::api::CameraInfo;
use vision::scene::layout::SceneSpec;

/// Limit of each backend request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Network or HTTP failure.
    #[error("backend request failed: {0}")]
    Http(String),
    /// The answer is not a camera list we can read.
    #[error("unreadable camera list: {0}")]
    Format(String),
}

/// Reads the camera entries out of a backend answer.
pub fn parse_camera_list(
    body: &Value,
    cfg: &BackendConfig,
) -> Result<Vec<CameraDecl>, BackendError> {
    let list = match body {
        Value::Array(items) => items,
        Value::Object(obj) => match obj.get("data") {
            Some(Value::Array(items)) => items,
            Some(Value::Object(data)) => ["records", "list", "content", "items"]
                .iter()
                .find_map(|k| data.get(*k).and_then(Value::as_array))
                .ok_or_else(|| BackendError::Format("no camera array under `data`".into()))?,
            _ => return Err(BackendError::Format("expected an array or `data`".into())),
        },
        _ => {
            return Err(BackendError::Format(
                "expected a JSON array or object".into(),
            ));
        }
    };
    let mut cameras = Vec::new();
    for entry in list {
        let id = match entry.get(&cfg.id_field) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let url = entry
            .get(&cfg.url_field)
            .and_then(Value::as_str)
            .map(str::trim);
        let enabled = match entry.get(&cfg.enabled_field) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(Value::String(s)) => !matches!(s.as_str(), "0" | "false" | "disabled" | "offline"),
            Some(_) => true,
        };
        match (id, url) {
            (Some(id), Some(url)) if id >= 0 && !url.is_empty() => {
                let mut decl = CameraDecl::new(id, url, enabled);
                match scene_of(entry) {
                    Ok(scene) => decl.scene = scene,
                    Err(e) => decl.scene_error = Some(e),
                }
                cameras.push(decl);
            }
            // One bad entry does not hide the others.
            _ => tracing::warn!(entry = %entry, "backend camera entry without a usable id or URL"),
        }
    }
    Ok(cameras)
}

/// The `scene` of a backend camera entry: an object in the shape of SPEC 9, or that object as
/// a JSON string (how a database column often carries it); absent or null is none.
fn scene_of(entry: &Value) -> Result<Option<SceneSpec>, String> {
    let parsed = match entry.get("scene") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s),
        Some(v) => serde_json::from_value(v.clone()),
    };
    parsed.map(Some).map_err(|e| format!("invalid scene: {e}"))
}

/// The statistics posted for one camera over one window; `measured` adds its line counts and
/// lane speeds over the window (when measurement is on).
pub fn camera_stats(
    now: &CameraInfo,
    before: Option<&CameraInfo>,
    window: Duration,
    measured: Option<&WindowStats>,
) -> Value {
    let delta = |f: fn(&CameraInfo) -> u64| f(now) - before.map_or(0, f).min(f(now));
    let frames = delta(|c| c.frames_analysed);
    let per_frame = |n: u64| {
        if frames == 0 {
            0.0
        } else {
            n as f64 / frames as f64
        }
    };
    json!({
        "cameraId": now.camera_id,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "windowSeconds": window.as_secs_f64(),
        "state": now.state,
        "framesAnalysed": frames,
        "avgVehicles": per_frame(delta(|c| c.vehicle_detections)),
        "avgPersons": per_frame(delta(|c| c.person_detections)),
        "reconnects": delta(|c| c.reconnects),
        "lines": measured.map_or(json!([]), |m| json!(m.lines)),
        "lanes": measured.map_or(json!([]), |m| json!(m.lanes)),
    })
}

/// An HTTP client for the backend.
#[derive(Debug, Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    cfg: BackendConfig,
}

impl BackendClient {
    /// A client for `cfg`.
    pub fn new(cfg: BackendConfig) -> Result<Self, BackendError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| BackendError::Http(e.to_string()))?;
        Ok(Self { http, cfg })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.cfg.base_url);
        let req = self.http.request(method, url);
        match &self.cfg.jwt_token {
            Some(token) => {
                let value = if token.expose().contains(' ') {
                    token.expose().to_string()
                } else {
                    format!("Bearer {}", token.expose())
                };
                req.header(self.cfg.jwt_header.as_str(), value)
            }
            None => req,
        }
    }

    /// Fetches the camera list.
    pub async fn cameras(&self) -> Result<Vec<CameraDecl>, BackendError> {
        let resp = self
            .request(reqwest::Method::GET, &self.cfg.cameras_path)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| BackendError::Http(e.without_url().to_string()))?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| BackendError::Format(e.without_url().to_string()))?;
        parse_camera_list(&body, &self.cfg)
    }

    /// Posts one camera's statistics.
    pub async fn post_stats(&self, stats: &Value) -> Result<(), BackendError> {
        self.request(reqwest::Method::POST, &self.cfg.stats_path)
            .json(stats)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(|_| ())
            .map_err(|e| BackendError::Http(e.without_url().to_string()))
    }
}

/// Keeps the declared cameras (this instance's, or the fleet's) in line with the backend's
/// camera list until cancelled.
pub async fn sync_cameras(
    client: BackendClient,
    declared: Declared,
    scenes: Arc<SceneBook>,
    cancel: CancellationToken,
) {
    let mut managed: HashSet<CameraId> = HashSet::new();
    let mut ticker = tokio::time::interval(client.cfg.refresh);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let wanted = match client.cameras().await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "camera list from the backend unavailable; keeping the current cameras");
                continue;
            }
        };
        for c in &wanted {
            apply_scene(&scenes, c);
        }
        let wanted: HashMap<CameraId, String> = wanted
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| (c.id, c.url))
            .collect();
        for id in managed
            .iter()
            .copied()
            .filter(|id| !wanted.contains_key(id))
            .collect::<Vec<_>>()
        {
            tracing::info!(camera = id, "camera removed by the backend");
            declared.withdraw(id);
            managed.remove(&id);
        }
        for (id, url) in &wanted {
            match declared.declare(*id, url) {
                Ok(()) => {
                    if managed.insert(*id) {
                        tracing::info!(camera = id, "camera added by the backend");
                    }
                }
                Err(e) => tracing::warn!(camera = id, error = %e, "backend camera not started"),
            }
        }
    }
}

/// Takes a backend camera's scene (none clears it); a bad one is logged and the last good one
/// stays.
fn apply_scene(scenes: &SceneBook, c: &CameraDecl) {
    let result = match &c.scene_error {
        Some(e) => Err(e.clone()),
        None => scenes
            .set_backend(c.id, c.scene.as_ref())
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(camera = c.id, error = %e, "backend scene refused; keeping the last good one");
    }
}

/// Posts each camera's statistics every interval until cancelled.
pub async fn post_statistics(
    client: BackendClient,
    hub: Arc<CameraHub>,
    measure: Option<Arc<MeasureSink>>,
    cancel: CancellationToken,
) {
    let window = client.cfg.stats_interval;
    let mut previous: HashMap<CameraId, CameraInfo> = HashMap::new();
    let mut ticker = tokio::time::interval(window);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = hub.cameras();
        for cam in &now {
            let measured = measure.as_ref().and_then(|m| m.take_window(cam.camera_id));
            let stats = camera_stats(cam, previous.get(&cam.camera_id), window, measured.as_ref());
            if let Err(e) = client.post_stats(&stats).await {
                tracing::warn!(camera = cam.camera_id, error = %e, "statistics not delivered");
            }
        }
        previous = now.into_iter().map(|c| (c.camera_id, c)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::server::CameraState as State;

    fn cfg() -> BackendConfig {
        BackendConfig {
            active: true,
            base_url: "http://127.0.0.1:1/api".into(),
            cameras_path: "/cameras".into(),
            stats_path: "/stats".into(),
            refresh: Duration::from_secs(60),
            stats_interval: Duration::from_secs(60),
            id_field: "id".into(),
            url_field: "rtspUrl".into(),
            enabled_field: "enabled".into(),
            jwt_header: "Authorization".into(),
            jwt_token: None,
        }
    }

    #[test]
    fn camera_lists_in_the_usual_shapes() {
        let entries = json!([
            {"id": 1, "rtspUrl": "rtsp://a"},
            {"id": "2", "rtspUrl": " rtsp://b ", "enabled": 0},
            {"id": 3},
            {"name": "no id", "rtspUrl": "rtsp://c"}
        ]);
        for body in [
            entries.clone(),
            json!({"code": 200, "msg": "OK", "data": entries.clone()}),
            json!({"data": {"records": entries.clone(), "total": 4}}),
        ] {
            let cams = parse_camera_list(&body, &cfg()).unwrap();
            assert_eq!(cams.len(), 2, "{body}");
            assert_eq!(cams[0], CameraDecl::new(1, "rtsp://a", true));
            assert_eq!(cams[1], CameraDecl::new(2, "rtsp://b", false));
        }
        assert!(parse_camera_list(&json!("nope"), &cfg()).is_err());
        assert!(parse_camera_list(&json!({"data": {"x": 1}}), &cfg()).is_err());
    }

    #[test]
    fn scenes_come_as_objects_or_json_strings() {
        let body = json!([
            {"id": 1, "rtspUrl": "rtsp://a", "scene": {"detect_interval": 0.5}},
            {"id": 2, "rtspUrl": "rtsp://b", "scene": "{\"lines\": [{\"name\": \"s\", \"points\": [[0, 0], [9, 9]]}]}"},
            {"id": 3, "rtspUrl": "rtsp://c", "scene": {"lanez": []}},
            {"id": 4, "rtspUrl": "rtsp://d", "scene": null}
        ]);
        let cams = parse_camera_list(&body, &cfg()).unwrap();
        assert_eq!(cams.len(), 4, "a bad scene does not drop its camera");
        assert_eq!(cams[0].scene.as_ref().unwrap().detect_interval, Some(0.5));
        assert_eq!(cams[1].scene.as_ref().unwrap().lines[0].name, "s");
        let e = cams[2].scene_error.as_deref().unwrap();
        assert!(e.contains("lanez"), "{e}");
        assert!(cams[3].scene.is_none() && cams[3].scene_error.is_none());
    }

    #[test]
    fn field_names_are_configurable() {
        let mut c = cfg();
        c.id_field = "cameraId".into();
        c.url_field = "streamUrl".into();
        let cams =
            parse_camera_list(&json!([{"cameraId": 9, "streamUrl": "rtsp://x"}]), &c).unwrap();
        assert_eq!(cams[0].id, 9);
    }

    #[test]
    fn statistics_are_deltas_over_the_window() {
        let mut before = CameraInfo::new(4, "rtsp://x".into());
        before.frames_analysed = 10;
        before.vehicle_detections = 30;
        let mut now = before.clone();
        now.state = State::Online;
        now.frames_analysed = 40;
        now.vehicle_detections = 120;
        now.person_detections = 15;
        let s = camera_stats(&now, Some(&before), Duration::from_secs(60), None);
        assert_eq!(s["cameraId"], 4);
        assert_eq!(s["framesAnalysed"], 30);
        assert_eq!(s["avgVehicles"], 3.0);
        assert_eq!(s["avgPersons"], 0.5);
        assert_eq!(s["state"], "online");
    }
}
