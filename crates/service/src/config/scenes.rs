//! Scene files: `<cameraId>.yaml` in the scenes folder (`scenes.dir`), each one camera's scene
//! geometry in the shape of SPEC section 9. Read and checked at start-up (a bad file is a
//! configuration error naming the file and the field), written by the scene API (JSON, which
//! is YAML too) through a temporary file and a rename, so a crash never leaves half a scene.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::CameraId;
use vision::scene::layout::{Layout, SceneSpec};

use super::ConfigError;

/// One checked scene file.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneFile {
    /// Where it was read.
    pub path: PathBuf,
    /// Its scene, checked.
    pub layout: Arc<Layout>,
}

/// Parses and checks a scene document (YAML or JSON); the error names the field.
pub fn parse(text: &str, max_error_px: f64) -> Result<Layout, String> {
    let spec: SceneSpec = if text.trim().is_empty() {
        SceneSpec::default()
    } else {
        super::yaml::parse(text, "scene")?
    };
    spec.compile(max_error_px).map_err(|e| e.to_string())
}

/// The camera id a scene file is for: `<id>.yaml` or `<id>.yml`; `None` for other files.
fn camera_of(path: &Path) -> Option<Result<CameraId, String>> {
    let ext = path.extension()?.to_str()?;
    if !matches!(ext, "yaml" | "yml") {
        return None;
    }
    let stem = path.file_stem()?.to_string_lossy();
    Some(
        stem.parse::<CameraId>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("a scene file is named `<cameraId>.yaml`, not `{stem}.{ext}`")),
    )
}

/// Reads every scene file of `dir` (a missing folder holds none), sorted by camera id.
pub fn load_dir(dir: &Path, max_error_px: f64) -> Result<Vec<(CameraId, SceneFile)>, ConfigError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let key = path.display().to_string();
        let Some(id) = camera_of(&path) else { continue };
        let id = id.map_err(|m| ConfigError::new(key.clone(), m))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(key.clone(), format!("cannot read: {e}")))?;
        let layout = parse(&text, max_error_px).map_err(|m| ConfigError::new(key.clone(), m))?;
        if files.iter().any(|(other, _)| *other == id) {
            return Err(ConfigError::new(
                key,
                format!("camera {id} has two scene files"),
            ));
        }
        files.push((
            id,
            SceneFile {
                path,
                layout: Arc::new(layout),
            },
        ));
    }
    files.sort_by_key(|(id, _)| *id);
    Ok(files)
}

/// The path of camera `id`'s scene file in `dir`.
pub fn path_of(dir: &Path, id: CameraId) -> PathBuf {
    dir.join(format!("{id}.yaml"))
}

/// Writes camera `id`'s scene into `dir` (created if missing), replacing any earlier file
/// whole.
pub fn save(dir: &Path, id: CameraId, spec: &SceneSpec) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = path_of(dir, id);
    let tmp = dir.join(format!(".{id}.yaml.tmp"));
    let mut text = serde_json::to_string_pretty(spec).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Removes camera `id`'s scene file (and a `.yml` one); whether there was one.
pub fn remove(dir: &Path, id: CameraId) -> std::io::Result<bool> {
    let mut removed = false;
    for path in [path_of(dir, id), dir.join(format!("{id}.yml"))] {
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENE: &str = "\
calibration:
  image: [[0, 0], [400, 0], [400, 300], [0, 300]]
  ground: [[0, 0], [40, 0], [40, 30], [0, 30]]
lanes:
  - {name: nb-1, polygon: [[100, 0], [200, 0], [200, 300], [100, 300]], direction: [[150, 250], [150, 50]], speed_limit_kmh: 50}
";

    #[test]
    fn a_folder_of_scenes_loads_saves_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("3.yaml"), SCENE).unwrap();
        std::fs::write(dir.path().join("README.md"), "not a scene").unwrap();
        let files = load_dir(dir.path(), 5.0).unwrap();
        assert_eq!(files.len(), 1);
        let (id, file) = &files[0];
        assert_eq!(*id, 3);
        assert!(file.layout.calibrated());
        assert_eq!(file.layout.lanes[0].speed_limit_kmh, Some(50.0));

        // What `save` writes reads back the same.
        let path = save(dir.path(), 8, &file.layout.spec).unwrap();
        let back = parse(&std::fs::read_to_string(&path).unwrap(), 5.0).unwrap();
        assert_eq!(back.spec, file.layout.spec);
        assert_eq!(load_dir(dir.path(), 5.0).unwrap().len(), 2);
        assert!(remove(dir.path(), 8).unwrap());
        assert!(!remove(dir.path(), 8).unwrap());
        assert!(
            load_dir(Path::new("/nonexistent/scenes"), 5.0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_files_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = SCENE.replace("[150, 50]", "[150, 250]");
        std::fs::write(dir.path().join("3.yaml"), bad).unwrap();
        let err = load_dir(dir.path(), 5.0).unwrap_err();
        assert!(err.key.ends_with("3.yaml"), "{err}");
        assert!(err.message.contains("lanes[0].direction"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("north.yaml"), SCENE).unwrap();
        let err = load_dir(dir.path(), 5.0).unwrap_err();
        assert!(err.message.contains("<cameraId>.yaml"), "{err}");

        let err = parse("lanes: [{name: a, polygon: [[0, 0]], colour: red}]", 5.0).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
