//! Cameras declared by the operator, so the service runs headless: a `cameras.yaml`
//! (`cameras: [{id, url, enabled}]`, path from `cameras.file`) and `--camera ID=URL` flags.
//! Declared cameras start with the service and run until it stops, whoever watches.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// One declared camera.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraDecl {
    /// Camera id, as clients use it.
    pub id: i64,
    /// Source URL (`rtsp://`, `rtsps://`, `file:///...mp4`).
    pub url: String,
    /// Whether to run it.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
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
/// (`ID=URL`). Ids must be unique.
pub fn load(path: &Path, flags: &[String]) -> Result<Vec<CameraDecl>, ConfigError> {
    let key = path.display().to_string();
    let mut cameras = Vec::new();
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(key.clone(), format!("cannot read: {e}")))?;
        if !text.trim().is_empty() {
            let file: CamerasFile = super::yaml::parse(&text, "cameras file")
                .map_err(|m| ConfigError::new(key.clone(), m))?;
            for decl in &file.cameras {
                check(decl, &key)?;
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
        let decl = CameraDecl {
            id,
            url: url.trim().to_string(),
            enabled: true,
        };
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
        let cams = load(f.path(), &["7=rtsp://cam/x".into()]).unwrap();
        assert_eq!(cams.len(), 3);
        assert!(cams[0].enabled && !cams[1].enabled);
        assert_eq!(
            cams[2],
            CameraDecl {
                id: 7,
                url: "rtsp://cam/x".into(),
                enabled: true
            }
        );
        assert!(
            load(Path::new("/nonexistent/cameras.yaml"), &[])
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
        ] {
            let f = file(text);
            let err = load(f.path(), &[]).unwrap_err();
            assert_eq!(err.key, f.path().display().to_string(), "{text}: {err}");
        }
        for flag in ["nonsense", "x=rtsp://a", "1=gopher://a"] {
            let err = load(Path::new("/nonexistent"), &[flag.into()]).unwrap_err();
            assert_eq!(err.key, "--camera", "{flag}");
        }
    }
}
