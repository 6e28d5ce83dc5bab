//! Cameras declared by the operator, so the service runs headless: a `cameras.yaml`
//! (`cameras: [{id, url, enabled, scene}]`, path from `cameras.file`) and `--camera ID=URL`
//! flags. Declared cameras start with the service and run until it stops, whoever watches.
//! A camera's `scene` is checked here, so a bad one stops the service at start-up with the
//! field named.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use vision::scene::layout::{Layout, SceneSpec};

use super::ConfigError;

/// One declared camera.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraDecl {
    /// Camera id, as clients use it.
    pub id: i64,
    /// Source URL (`rtsp://`, `rtsps://`, `file:///...mp4`).
    pub url: String,
    /// Whether to run it.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Its scene geometry, as written.
    #[serde(default)]
    pub scene: Option<SceneSpec>,
    /// That scene, checked (set by [`load`]).
    #[serde(skip)]
    pub layout: Option<Arc<Layout>>,
    /// Why the scene given with it could not be read (backend lists): its last good scene
    /// stays.
    #[serde(skip)]
    pub scene_error: Option<String>,
}

impl CameraDecl {
    /// A camera with no scene.
    pub fn new(id: i64, url: impl Into<String>, enabled: bool) -> Self {
        Self {
            id,
            url: url.into(),
            enabled,
            scene: None,
            layout: None,
            scene_error: None,
        }
    }
}

fn enabled_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CamerasFile {
    #[serde(default)]
    cameras: Vec<CameraDecl>,
}

/// Schemes a declared camera may use.
const SCHEMES: &[&str] = &["rtsp", "rtsps", "file"];

fn check(decl: &CameraDecl, key: &str) -> Result<(), ConfigError> {
    if decl.id < 0 {
        return Err(ConfigError::new(
            key,
            format!("camera id {} must not be negative", decl.id),
        ));
    }
    let url = url::Url::parse(&decl.url)
        .map_err(|e| ConfigError::new(key, format!("camera {}: invalid URL: {e}", decl.id)))?;
    if !SCHEMES.contains(&url.scheme()) {
        return Err(ConfigError::new(
            key,
            format!(
                "camera {}: scheme `{}` is not one of {}",
                decl.id,
                url.scheme(),
                SCHEMES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Reads the cameras file at `path` (a missing file declares none) and appends `flags`
/// (`ID=URL`). Ids must be unique; scenes are checked (calibrations up to `max_error_px`).
pub fn load(
    path: &Path,
    flags: &[String],
    max_error_px: f64,
) -> Result<Vec<CameraDecl>, ConfigError> {
    let key = path.display().to_string();
    let mut cameras = Vec::new();
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(key.clone(), format!("cannot read: {e}")))?;
        if !text.trim().is_empty() {
            let file: CamerasFile = super::yaml::parse(&text, "cameras file")
                .map_err(|m| ConfigError::new(key.clone(), m))?;
            let mut file = file;
            for decl in &mut file.cameras {
                check(decl, &key)?;
                if let Some(spec) = &decl.scene {
                    let layout = spec.compile(max_error_px).map_err(|e| {
                        ConfigError::new(key.clone(), format!("camera {}: {e}", decl.id))
                    })?;
                    decl.layout = Some(Arc::new(layout));
                }
            }
            cameras.extend(file.cameras);
        }
    }
    for flag in flags {
        let (id, url) = flag
            .split_once('=')
            .ok_or_else(|| ConfigError::new("--camera", format!("`{flag}` is not ID=URL")))?;
        let id = id
            .trim()
            .parse()
            .map_err(|_| ConfigError::new("--camera", format!("`{id}` is not a camera id")))?;
        let decl = CameraDecl::new(id, url.trim(), true);
        check(&decl, "--camera")?;
        cameras.push(decl);
    }
    let mut ids: Vec<i64> = cameras.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::new(
            key,
            format!("camera id {} is declared twice", w[0]),
        ));
    }
    Ok(cameras)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn file_and_flags_declare_cameras() {
        let f = file(
            "cameras:\n  - id: 1\n    url: rtsp://10.0.0.2/s\n  - {id: 2, url: 'file:///v.mp4', enabled: false}\n",
        );
        let cams = load(f.path(), &["7=rtsp://cam/x".into()], 5.0).unwrap();
        assert_eq!(cams.len(), 3);
        assert!(cams[0].enabled && !cams[1].enabled);
        assert_eq!(cams[2], CameraDecl::new(7, "rtsp://cam/x", true));
        assert!(
            load(Path::new("/nonexistent/cameras.yaml"), &[], 5.0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_declarations_are_config_errors() {
        for text in [
            "cameras:\n  - id: 1\n",
            "cameras:\n  - id: 1\n    url: rtsp://a\n    colour: red\n",
            "cameras:\n  - id: -1\n    url: rtsp://a\n",
            "cameras:\n  - id: 1\n    url: ftp://a\n",
            "cameras:\n  - {id: 1, url: 'rtsp://a'}\n  - {id: 1, url: 'rtsp://b'}\n",
            "camras: []\n",
            "cameras:\n  - {id: 1, url: 'rtsp://a', scene: {lanes: [{name: a, polygon: [[0, 0], [1, 1]]}]}}\n",
        ] {
            let f = file(text);
            let err = load(f.path(), &[], 5.0).unwrap_err();
            assert_eq!(err.key, f.path().display().to_string(), "{text}: {err}");
        }
        for flag in ["nonsense", "x=rtsp://a", "1=gopher://a"] {
            let err = load(Path::new("/nonexistent"), &[flag.into()], 5.0).unwrap_err();
            assert_eq!(err.key, "--camera", "{flag}");
        }
    }

    #[test]
    fn a_camera_scene_is_checked_and_compiled() {
        let f = file(
            "cameras:\n  - id: 3\n    url: rtsp://a/s\n    scene:\n      detect_interval: 0.4\n      zones:\n        - {name: bay, kind: exclude, polygon: [[0, 0], [100, 0], [100, 50]]}\n",
        );
        let cams = load(f.path(), &[], 5.0).unwrap();
        let layout = cams[0].layout.as_ref().unwrap();
        assert_eq!(layout.zones[0].name.as_ref(), "bay");
        assert_eq!(layout.spec.detect_interval, Some(0.4));
        let f = file(
            "cameras:\n  - id: 3\n    url: rtsp://a/s\n    scene:\n      lines: [{name: s, points: [[5, 5], [5, 5]]}]\n",
        );
        let err = load(f.path(), &[], 5.0).unwrap_err();
        assert!(
            err.message.contains("camera 3") && err.message.contains("lines[0].points"),
            "{err}"
        );
    }
}
