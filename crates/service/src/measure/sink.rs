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

use super::events::Episodes;
use super::tally::{Added, Tally};
use crate::metrics::{CrossingLabel, LaneLabel, Metrics};

/// Changed bins are handed to the writer at most this often, seconds of the wall clock.
pub const FLUSH_SECONDS: f64 = 5.0;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One camera's measuring state.
#[derive(Debug)]
struct Camera {
    tally: Tally,
    episodes: Episodes,
    last_flush: f64,
    /// Metric series created, retired with the camera.
    crossings: HashSet<CrossingLabel>,
    lanes: HashSet<LaneLabel>,
}

/// Measures, events and their database writer.
#[derive(Debug)]
pub struct MeasureSink {
    bin_seconds: u32,
    writer: WriterHandle,
    metrics: Arc<Metrics>,
    /// Where event snapshots go (`<dir>/<camera>/<date>/<time>-<type>.jpg`).
    snapshot_dir: PathBuf,
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
            snapshot_dir,
            cameras: Mutex::default(),
        }
    }

    /// The database writer.
    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// Saves the frame of a new event; returns the path written, relative to the snapshot
    /// folder's parent's view (as stored), or `None` when there is no frame or the disk
    /// refused (counted).
    fn snapshot(&self, report: &FrameReport<'_>, kind: &str) -> Option<String> {
        let jpeg = report.jpeg?;
        let at = report.timestamp;
        let dir = self
            .snapshot_dir
            .join(report.camera_id.to_string())
            .join(at.format("%Y-%m-%d").to_string());
        let path = dir.join(format!("{}-{kind}.jpg", at.format("%H%M%S%.3f")));
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, jpeg));
        match written {
            Ok(()) => Some(path.to_string_lossy().into_owned()),
            Err(e) => {
                self.metrics.error("snapshot");
                tracing::warn!(camera = report.camera_id, error = %e, "cannot save event snapshot");
                None
            }
        }
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
        let state = cameras.entry(camera).or_insert_with(|| Camera {
            tally: Tally::new(self.bin_seconds),
            episodes: Episodes::default(),
            last_flush: now,
            crossings: HashSet::new(),
            lanes: HashSet::new(),
        });
        for m in &report.scene.measures {
            let at = now - (report.stream_time - m.t).max(0.0);
            let added = state.tally.add(at, now, m);
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
        let Some(mut state) = lock(&self.cameras).remove(&camera) else {
            return;
        };
        let now = chrono::Utc::now();
        let mut batch = state
            .tally
            .take_changed(camera, now.timestamp_millis() as f64 / 1000.0);
        batch.events.extend(
            state
                .episodes
                .update(camera, now, &[])
                .into_iter()
                .map(|(e, _)| e),
        );
        if !batch.is_empty() {
            self.writer.submit(batch);
        }
        for label in state.crossings {
            self.metrics.line_crossings.remove(&label);
        }
        for label in state.lanes {
            self.metrics.lane_speeds.remove(&label);
        }
    }
}
