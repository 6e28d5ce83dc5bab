//! The measurement sink: every analysed frame's measures go into its camera's [`Tally`], the
//! current bin's figures into the result's `trafficStats.lines` and `.lanes`, crossings and
//! lane speeds into the metrics, and the alerts into [`Episodes`]. Changed bins (every few
//! seconds) and changed events go to the database writer, which never blocks this thread: it
//! merges what it is handed into its pending rows and writes them from its own thread.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use camera::sink::{CameraEvent, FrameReport, FrameSink, SinkError};
use protocol::{CameraId, DetectionResult};
use store::{Batch, WriterHandle};
use vision::scene::layout::Layout;
use vision::scene::measure::Measure;

use super::events::Episodes;
use super::tally::{Added, LATE_SECONDS, Tally};
use super::window::{Window, WindowStats};
use crate::metrics::{CrossingLabel, LaneLabel, Metrics};
use crate::storage::FrameStore;

/// Changed bins are handed to the writer at most this often, seconds of the wall clock.
pub const FLUSH_SECONDS: f64 = 5.0;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One camera's measuring state. Its tally outlives the camera's stop (see
/// [`MeasureSink::forget_idle`]): rows are absolute per process run, so a camera started again
/// within a bin must go on from its earlier figures, not overwrite them.
#[derive(Debug)]
struct Camera {
    tally: Tally,
    episodes: Episodes,
    last_flush: f64,
    /// Metric series created, retired with the camera.
    crossings: HashSet<CrossingLabel>,
    lanes: HashSet<LaneLabel>,
    /// When (unix seconds) the camera was stopped; `None` while it runs.
    stopped_at: Option<f64>,
    /// What the backend has not been sent yet.
    window: Window,
    /// The geometry of the last frame (the window's lines and lanes).
    layout: Arc<Layout>,
}

impl Camera {
    fn new(bin_seconds: u32, now: f64) -> Self {
        Self {
            tally: Tally::new(bin_seconds),
            episodes: Episodes::default(),
            last_flush: now,
            crossings: HashSet::new(),
            lanes: HashSet::new(),
            stopped_at: None,
            window: Window::default(),
            layout: Arc::default(),
        }
    }

    /// Adds `m`, which happened at unix time `at`, once `now`.
    fn add(&mut self, at: f64, now: f64, m: &Measure) -> Added {
        let added = self.tally.add(at, now, m);
        if added != Added::TooLate {
            self.window.add(m);
        }
        added
    }
}

/// Unix seconds now.
fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// Measures, events and their database writer.
#[derive(Debug)]
pub struct MeasureSink {
    bin_seconds: u32,
    writer: WriterHandle,
    metrics: Arc<Metrics>,
    /// Where event snapshots go (`<dir>/<camera>/<date>/<time>-<type>.jpg`).
    snapshots: FrameStore,
    cameras: Mutex<HashMap<CameraId, Camera>>,
}

impl MeasureSink {
    /// A sink binning by `bin_seconds`, writing through `writer`, saving event snapshots under
    /// `snapshot_dir`.
    pub fn new(
        bin_seconds: u32,
        writer: WriterHandle,
        metrics: Arc<Metrics>,
        snapshot_dir: PathBuf,
    ) -> Self {
        Self {
            bin_seconds,
            writer,
            metrics,
            snapshots: FrameStore::new(snapshot_dir),
            cameras: Mutex::default(),
        }
    }

    /// The database writer.
    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// Camera `camera`'s crossings and lane passes since the last call (every line and lane of
    /// its scene), and a new window begun; `None` for a camera not measured here.
    pub fn take_window(&self, camera: CameraId) -> Option<WindowStats> {
        let mut cameras = lock(&self.cameras);
        let state = cameras.get_mut(&camera)?;
        let layout = Arc::clone(&state.layout);
        Some(state.window.take(&layout))
    }

    /// Where event snapshots are saved.
    pub fn snapshots(&self) -> &FrameStore {
        &self.snapshots
    }

    /// Saves the frame of a new event of type `kind`; returns the path written, or `None` when
    /// there is no frame or the disk refused (counted).
    fn snapshot(&self, report: &FrameReport<'_>, kind: &str) -> Option<String> {
        let jpeg = report.jpeg?;
        match self
            .snapshots
            .save(report.camera_id, report.timestamp, Some(kind), jpeg)
        {
            Ok(path) => Some(path.to_string_lossy().into_owned()),
            Err(e) => {
                self.metrics.error("snapshot");
                tracing::warn!(camera = report.camera_id, error = %e, "cannot save event snapshot");
                None
            }
        }
    }

    /// Forgets the cameras stopped for longer than [`LATE_SECONDS`] whose bins have all
    /// ended by unix time `now`: a new start cannot write into their bins any more.
    fn forget_idle(cameras: &mut HashMap<CameraId, Camera>, now: f64) {
        cameras.retain(|_, c| {
            let idle = c
                .stopped_at
                .is_some_and(|at| now - at > LATE_SECONDS as f64);
            !(idle && c.tally.ended_by(now))
        });
    }

    fn count(&self, camera: CameraId, state: &mut Camera, added: Added) {
        match added {
            Added::Crossing {
                line,
                direction,
                class,
            } => {
                let label = CrossingLabel {
                    camera,
                    line: line.to_string(),
                    direction: direction.as_str(),
                    class,
                };
                self.metrics.line_crossings.get_or_create(&label).inc();
                state.crossings.insert(label);
            }
            Added::Speed { lane, kmh } => {
                let label = LaneLabel {
                    camera,
                    lane: lane.to_string(),
                };
                self.metrics.lane_speeds.get_or_create(&label).observe(kmh);
                state.lanes.insert(label);
            }
            Added::TooLate => {
                self.metrics.measures_late.inc();
            }
            Added::Other => {}
        }
    }
}

impl FrameSink for MeasureSink {
    fn frame(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
    ) -> Result<(), SinkError> {
        let camera = report.camera_id;
        let now = report.timestamp.timestamp_millis() as f64 / 1000.0;
        let mut cameras = lock(&self.cameras);
        let state = cameras
            .entry(camera)
            .or_insert_with(|| Camera::new(self.bin_seconds, now));
        state.stopped_at = None;
        state.layout = Arc::clone(&report.scene.layout);
        for m in &report.scene.measures {
            let at = now - (report.stream_time - m.t).max(0.0);
            let added = state.add(at, now, m);
            self.count(camera, state, added);
        }
        let (lines, lanes) = state
            .tally
            .current(now, &report.scene.layout, &report.scene.lanes);
        result.traffic_stats.lines = lines;
        result.traffic_stats.lanes = lanes;

        let mut batch = Batch::default();
        let events =
            state
                .episodes
                .update(camera, report.timestamp, &result.dangerous_driving_results);
        for (mut row, new) in events {
            if new && let Some(path) = self.snapshot(report, &row.kind) {
                state.episodes.set_snapshot(&row.uid, path.clone());
                row.snapshot = Some(path);
            }
            batch.events.push(row);
        }
        let bin_changed = state.tally.bin_start(now) != state.tally.bin_start(state.last_flush);
        if now - state.last_flush >= FLUSH_SECONDS || bin_changed {
            state.last_flush = now;
            let changed = state.tally.take_changed(camera, now);
            batch.counts = changed.counts;
            batch.movements = changed.movements;
            batch.speeds = changed.speeds;
            Self::forget_idle(&mut cameras, now);
        }
        drop(cameras);
        if !batch.is_empty() {
            self.writer.submit(batch);
        }
        Ok(())
    }

    fn event(&self, camera: CameraId, event: CameraEvent) {
        if event != CameraEvent::Removed {
            return;
        }
        let now = chrono::Utc::now();
        let mut cameras = lock(&self.cameras);
        let Some(state) = cameras.get_mut(&camera) else {
            return;
        };
        let now_s = now.timestamp_millis() as f64 / 1000.0;
        state.stopped_at = Some(now_s);
        let mut batch = state.tally.take_changed(camera, now_s);
        batch.events.extend(
            std::mem::take(&mut state.episodes)
                .update(camera, now, &[])
                .into_iter()
                .map(|(e, _)| e),
        );
        for label in std::mem::take(&mut state.crossings) {
            self.metrics.line_crossings.remove(&label);
        }
        for label in std::mem::take(&mut state.lanes) {
            self.metrics.lane_speeds.remove(&label);
        }
        drop(cameras);
        if !batch.is_empty() {
            self.writer.submit(batch);
        }
    }

    fn ended(&self, camera: CameraId, measures: &[Measure], stream_time: f64) {
        let now = unix_now();
        let mut cameras = lock(&self.cameras);
        let state = cameras
            .entry(camera)
            .or_insert_with(|| Camera::new(self.bin_seconds, now));
        for m in measures {
            let at = now - (stream_time - m.t).max(0.0);
            let added = state.add(at, now, m);
            // A stopped camera's metric series are retired: its last passes go to the
            // database only.
            if state.stopped_at.is_none() || added == Added::TooLate {
                self.count(camera, state, added);
            }
        }
        let batch = state.tally.take_changed(camera, now);
        drop(cameras);
        if !batch.is_empty() {
            self.writer.submit(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use store::{Backend, Store, StoreConfig, Writer, WriterConfig};
    use vision::scene::measure::MeasureKind;

    use super::*;

    fn movement(track_id: u64) -> Measure {
        Measure {
            t: 10.0,
            track_id,
            class: "car".into(),
            kind: MeasureKind::Movement {
                from: "north".into(),
                to: "east".into(),
            },
        }
    }

    #[test]
    fn a_camera_started_again_within_a_bin_adds_to_its_earlier_figures() {
        let dir = tempfile::tempdir().unwrap();
        let db = Store::open(&StoreConfig {
            backend: Backend::Sqlite(dir.path().join("t.db")),
            retention_days: 0,
        })
        .unwrap();
        let writer = Writer::spawn(db.clone(), WriterConfig::default()).unwrap();
        let sink = MeasureSink::new(
            3600,
            writer.clone(),
            Arc::new(Metrics::default()),
            dir.path().join("snapshots"),
        );
        // A camera's analysis ends with a track open: its movement is kept.
        sink.ended(4, &[movement(1)], 12.0);
        // Stopped, started again and stopped in the same bin: one more movement.
        sink.event(4, CameraEvent::Removed);
        sink.ended(4, &[movement(1)], 12.0);
        sink.event(4, CameraEvent::Removed);
        let stats = writer.close();
        assert_eq!((stats.pending_rows, stats.rows_dropped), (0, 0));
        let now = unix_now() as i64;
        let rows = db.movements(4, now - 7200, now + 7200, 3600).unwrap();
        let total: u64 = rows.iter().map(|r| r.count).sum();
        assert_eq!(total, 2, "{rows:?}");
    }

    #[test]
    fn stopped_cameras_are_forgotten_once_their_bins_ended() {
        let mut cameras = HashMap::new();
        let mut c = Camera::new(60, 1000.0);
        c.tally.add(1000.0, 1000.0, &movement(1));
        c.stopped_at = Some(1000.0);
        cameras.insert(1, c);
        cameras.insert(2, Camera::new(60, 1000.0));
        // Stopped, but its bin (960-1020) is still open.
        MeasureSink::forget_idle(&mut cameras, 1019.0);
        assert!(cameras.contains_key(&1));
        // The bin ended, but the camera stopped only just now: its last measures may come.
        let mut c = Camera::new(60, 1000.0);
        c.stopped_at = Some(1030.0);
        cameras.insert(3, c);
        MeasureSink::forget_idle(&mut cameras, 1130.0);
        assert!(!cameras.contains_key(&1), "stopped long ago, bins over");
        assert!(cameras.contains_key(&2), "running");
        assert!(cameras.contains_key(&3), "stopped 100 s ago");
    }
}
