//! Analysed frames kept on disk for review (`storage.save_raw_frames`): each camera's frames go to
//! `save_dir/CAMERA/YYYY-MM-DD/HHMMSS.mmm.jpg` (UTC), written by the camera's analysis thread.
//! A write that fails (disk full, a path that is not a directory) is counted and reported, never
//! fatal: the camera keeps streaming and the next frame tries again. [`FrameStore::prune`] keeps
//! the store within its [`Retention`] (age and total size), oldest frames first; it only ever
//! deletes files named the way the store names them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use protocol::CameraId;

/// The longest tag a frame's file name carries (see [`FrameStore::path`]).
pub const MAX_TAG_CHARS: usize = 40;

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

    /// The file a frame of `camera` taken at `at` goes to; `tag` tells apart frames saved for
    /// different reasons at one time (`HHMMSS.mmm-tag.jpg`). A tag may come from outside (an
    /// LLM's risk type): it is cut to [`MAX_TAG_CHARS`] ASCII letters, digits and `_`, any other
    /// character made `_`, so it can never leave the day folder.
    pub fn path(&self, camera: CameraId, at: DateTime<Utc>, tag: Option<&str>) -> PathBuf {
        let time = at.format("%H%M%S%.3f");
        let tag: Option<String> = tag.map(|t| {
            t.chars()
                .take(MAX_TAG_CHARS)
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        });
        let name = match tag.filter(|t| !t.is_empty()) {
            Some(tag) => format!("{time}-{tag}.jpg"),
            None => format!("{time}.jpg"),
        };
        self.dir
            .join(camera.to_string())
            .join(at.format("%Y-%m-%d").to_string())
            .join(name)
    }

    /// Writes `jpeg` as the frame of `camera` taken at `at` (tagged `tag`, see
    /// [`FrameStore::path`]); a partial file is removed.
    pub fn save(
        &self,
        camera: CameraId,
        at: DateTime<Utc>,
        tag: Option<&str>,
        jpeg: &[u8],
    ) -> std::io::Result<PathBuf> {
        let path = self.path(camera, at, tag);
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

/// How much of the saved frames to keep (`storage.retention_days`, `storage.max_size_mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Frames older than this are deleted; `None` keeps them whatever their age.
    pub max_age: Option<Duration>,
    /// Above this many bytes the oldest frames are deleted; `None`: no cap.
    pub max_bytes: Option<u64>,
}

/// One saved frame found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFrame {
    /// Its file.
    pub path: PathBuf,
    /// When it was taken (from its day directory and file name).
    pub at: DateTime<Utc>,
    /// Its size.
    pub bytes: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Frames deleted.
    pub deleted: u64,
    /// Bytes of saved frames left.
    pub kept_bytes: u64,
}

/// The frames to delete so that what is left is within `retention` at `now`: every frame older
/// than the age limit, then the oldest until the total fits the size cap. Pure.
pub fn to_delete(
    mut frames: Vec<StoredFrame>,
    retention: Retention,
    now: DateTime<Utc>,
) -> (Vec<StoredFrame>, u64) {
    frames.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.path.cmp(&b.path)));
    let mut total: u64 = frames.iter().map(|f| f.bytes).sum();
    let oldest_kept = retention
        .max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .map(|age| now - age);
    let mut delete = 0;
    for f in &frames {
        let too_old = oldest_kept.is_some_and(|t| f.at < t);
        let too_big = retention.max_bytes.is_some_and(|max| total > max);
        if !too_old && !too_big {
            break;
        }
        total -= f.bytes;
        delete += 1;
    }
    frames.truncate(delete);
    (frames, total)
}

/// The time of day in a file name [`FrameStore::path`] makes: `HHMMSS.mmm[-tag].jpg`.
fn frame_time(name: &str) -> Option<NaiveTime> {
    let stem = name.strip_suffix(".jpg")?;
    let (time, tag) = match stem.split_once('-') {
        Some((time, tag)) => (time, Some(tag)),
        None => (stem, None),
    };
    let tag_ok = tag
        .is_none_or(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    tag_ok
        .then(|| NaiveTime::parse_from_str(time, "%H%M%S%.3f").ok())
        .flatten()
}

impl FrameStore {
    /// Every frame under the store that is named the way [`FrameStore::path`] names frames.
    pub fn scan(&self) -> Vec<StoredFrame> {
        let mut frames = Vec::new();
        for camera in read_dirs(&self.dir) {
            let is_camera = camera
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<CameraId>().is_ok());
            if !is_camera {
                continue;
            }
            for day_dir in read_dirs(&camera) {
                let Some(day) = day_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
                else {
                    continue;
                };
                let Ok(entries) = std::fs::read_dir(&day_dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let time = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(frame_time);
                    let (Some(time), Ok(meta)) = (time, entry.metadata()) else {
                        continue;
                    };
                    if meta.is_file() {
                        frames.push(StoredFrame {
                            path,
                            at: day.and_time(time).and_utc(),
                            bytes: meta.len(),
                        });
                    }
                }
            }
        }
        frames
    }

    /// Deletes what `retention` does not keep at `now`, and day directories left empty.
    pub fn prune(&self, retention: Retention, now: DateTime<Utc>) -> Pruned {
        let (delete, mut kept_bytes) = to_delete(self.scan(), retention, now);
        let mut deleted = 0;
        let mut days = std::collections::BTreeSet::new();
        for f in delete {
            if std::fs::remove_file(&f.path).is_ok() {
                deleted += 1;
            } else {
                kept_bytes += f.bytes;
            }
            if let Some(day) = f.path.parent() {
                days.insert(day.to_path_buf());
            }
        }
        for day in days {
            // Fails, as it should, while the directory still holds frames.
            let _ = std::fs::remove_dir(day);
        }
        Pruned {
            deleted,
            kept_bytes,
        }
    }
}

/// How often [`keep_within`] prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Prunes `store` at start-up and every [`PRUNE_INTERVAL`] until shutdown, handing each
/// prune's outcome to `report`.
pub async fn keep_within(
    store: FrameStore,
    retention: Retention,
    report: impl Fn(Pruned) + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(PRUNE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let s = store.clone();
        if let Ok(pruned) =
            tokio::task::spawn_blocking(move || s.prune(retention, Utc::now())).await
        {
            report(pruned);
        }
    }
}

/// Counts a prune of the saved frames (`saved_frames_deleted_total`, `saved_frames_bytes`).
pub fn report_saved_frames(metrics: Arc<Metrics>) -> impl Fn(Pruned) + Send + 'static {
    move |pruned| {
        metrics.saved_frames_deleted.inc_by(pruned.deleted);
        metrics
            .saved_frames_bytes
            .set(i64::try_from(pruned.kept_bytes).unwrap_or(i64::MAX));
        if pruned.deleted > 0 {
            tracing::info!(
                deleted = pruned.deleted,
                kept_mib = pruned.kept_bytes >> 20,
                "saved frames pruned"
            );
        }
    }
}

/// The subdirectories of `dir` (none when it cannot be read).
fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
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
        let path = store.save(3, at, None, b"\xff\xd8jpeg").unwrap();
        assert_eq!(path, dir.join("3/2026-11-28/090507.000.jpg"));
        let tagged = store.save(3, at, Some("tailgating"), b"x").unwrap();
        assert_eq!(tagged, dir.join("3/2026-11-28/090507.000-tailgating.jpg"));
        assert_eq!(store.scan().len(), 2, "tagged frames are the store's too");
        // A tag from outside (an LLM's risk type) stays a file name in the day folder.
        for (tag, name) in [
            ("../../escape", "090507.000-______escape.jpg"),
            ("闯红灯 now", "090507.000-____now.jpg"),
            ("", "090507.000.jpg"),
        ] {
            assert_eq!(
                store.path(3, at, Some(tag)),
                dir.join("3/2026-11-28").join(name),
                "{tag}"
            );
        }
        let long = "x".repeat(100);
        let name = store.path(3, at, Some(&long));
        assert_eq!(
            name.file_name().unwrap().len(),
            "090507.000-.jpg".len() + MAX_TAG_CHARS
        );
        store.save(3, at, Some("../../escape"), b"x").unwrap();
        assert_eq!(
            store.scan().len(),
            3,
            "saved where the store finds it again"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"\xff\xd8jpeg");
        // A save directory that is a file: an error, not a panic.
        let blocked = FrameStore::new(path.clone());
        assert!(blocked.save(3, at, None, b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn frame(at: DateTime<Utc>, bytes: u64) -> StoredFrame {
        StoredFrame {
            path: PathBuf::from(format!("{}.jpg", at.timestamp_millis())),
            at,
            bytes,
        }
    }

    #[test]
    fn the_oldest_frames_go_first_by_age_then_by_size() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let hours = |h: i64| now - chrono::Duration::hours(h);
        let frames = vec![
            frame(hours(1), 100),
            frame(hours(50), 100),
            frame(hours(30), 100),
        ];
        let day = Some(Duration::from_secs(24 * 3600));
        let keep_all = Retention {
            max_age: None,
            max_bytes: None,
        };
        assert_eq!(to_delete(frames.clone(), keep_all, now), (vec![], 300));
        // By age: the two frames older than a day, oldest first.
        let by_age = Retention {
            max_age: day,
            max_bytes: None,
        };
        let (gone, left) = to_delete(frames.clone(), by_age, now);
        assert_eq!(gone, vec![frame(hours(50), 100), frame(hours(30), 100)]);
        assert_eq!(left, 100);
        // By size: down to 150 bytes takes the two oldest; exactly at the cap is kept.
        let by_size = |max| Retention {
            max_age: None,
            max_bytes: Some(max),
        };
        let (gone, left) = to_delete(frames.clone(), by_size(150), now);
        assert_eq!(gone.len(), 2);
        assert_eq!(left, 100);
        assert_eq!(to_delete(frames.clone(), by_size(300), now).0, vec![]);
        // Both: age first, then size (nothing left when the cap is 0).
        let both = Retention {
            max_age: day,
            max_bytes: Some(0),
        };
        assert_eq!(
            to_delete(frames, both, now),
            (
                vec![
                    frame(hours(50), 100),
                    frame(hours(30), 100),
                    frame(hours(1), 100)
                ],
                0
            )
        );
    }

    #[test]
    fn pruning_deletes_only_the_stores_own_old_frames() {
        let dir = std::env::temp_dir().join(format!("store-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FrameStore::new(&dir);
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let old = now - chrono::Duration::days(3);
        for (camera, at) in [
            (1, old),
            (1, now),
            (2, old),
            (2, now - chrono::Duration::hours(1)),
        ] {
            store.save(camera, at, None, &[0u8; 1000]).unwrap();
        }
        // Things the store did not write stay, whatever their age.
        let foreign = [
            dir.join("notes.txt"),
            dir.join("1").join("2026-11-25").join("keep.jpg"),
            dir.join("1").join("2026-11-25").join("000000.000-.jpg"),
            dir.join("1").join("2026-11-25").join("000000.000-a b.jpg"),
            dir.join("cam").join("2026-11-25").join("000000.000.jpg"),
        ];
        for f in &foreign {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(store.scan().len(), 4);
        let retention = Retention {
            max_age: Some(Duration::from_secs(24 * 3600)),
            max_bytes: Some(1500),
        };
        let pruned = store.prune(retention, now);
        assert_eq!(
            pruned,
            Pruned {
                deleted: 3,
                kept_bytes: 1000
            }
        );
        let left = store.scan();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path, store.path(1, now, None));
        // Camera 2's old day directory is gone; camera 1's holds a foreign file and stays.
        assert!(!dir.join("2").join("2026-11-25").exists());
        for f in &foreign {
            assert!(f.exists(), "{f:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
