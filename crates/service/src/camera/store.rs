//! Analysed frames kept on disk for review (`storage.save_raw_frames`): each camera's frames go to
//! `save_dir/CAMERA/YYYY-MM-DD/HHMMSS.mmm.jpg` (UTC), written by the camera's analysis thread.
//! A write that fails (disk full, a path that is not a directory) is counted and reported, never
//! fatal: the camera keeps streaming and the next frame tries again.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::http::protocol::CameraId;

/// Where analysed frames are saved.
#[derive(Debug, Clone)]
pub struct FrameStore {
    dir: PathBuf,
}

impl FrameStore {
    /// A store under `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a frame of `camera` taken at `at` goes to.
    pub fn path(&self, camera: CameraId, at: DateTime<Utc>) -> PathBuf {
        self.dir
            .join(camera.to_string())
            .join(at.format("%Y-%m-%d").to_string())
            .join(format!("{}.jpg", at.format("%H%M%S%.3f")))
    }

    /// Writes `jpeg` as the frame of `camera` taken at `at`; a partial file is removed.
    pub fn save(
        &self,
        camera: CameraId,
        at: DateTime<Utc>,
        jpeg: &[u8],
    ) -> std::io::Result<PathBuf> {
        let path = self.path(camera, at);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if let Err(e) = write_whole(&path, jpeg) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }
}

fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(data)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn frames_go_under_camera_and_day_and_failures_are_errors() {
        let dir = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
        let store = FrameStore::new(&dir);
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 9, 5, 7).unwrap();
        let path = store.save(3, at, b"\xff\xd8jpeg").unwrap();
        assert_eq!(path, dir.join("3/2026-11-28/090507.000.jpg"));
        assert_eq!(std::fs::read(&path).unwrap(), b"\xff\xd8jpeg");
        // A save directory that is a file: an error, not a panic.
        let blocked = FrameStore::new(path.clone());
        assert!(blocked.save(3, at, b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
