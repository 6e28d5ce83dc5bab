//! The service's frame sinks, plugged into every camera's pipeline in this order: the LLM
//! ([`LlmSink`], attaches its latest answer to the result), the saved frames ([`StoreSink`]),
//! the metrics ([`MetricsSink`], counts what the result finally says), and, in streaming mode,
//! the detector role's publisher (in the streaming crate).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use camera::sink::{CameraEvent, FrameReport, FrameSink, SinkError};
use llm::advisor::{Advisor, AdvisorLink, annotate};
use protocol::api::LlmCounters;
use protocol::detection::AlertSource;
use protocol::{CameraId, DetectionResult, RiskLevel};

use crate::metrics::{CameraMetrics, Metrics};
use crate::storage::FrameStore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The LLM beside every camera: one [`Advisor`] per camera, offered each frame, its latest
/// answer attached to the result.
#[derive(Debug)]
pub struct LlmSink {
    link: Arc<AdvisorLink>,
    advisors: Mutex<HashMap<CameraId, Advisor>>,
}

impl LlmSink {
    /// A sink whose advisors share `link`.
    pub fn new(link: Arc<AdvisorLink>) -> Self {
        Self {
            link,
            advisors: Mutex::default(),
        }
    }

    /// Camera `id`'s LLM counters, once it has offered a frame.
    pub fn counters(&self, id: CameraId) -> Option<LlmCounters> {
        lock(&self.advisors).get(&id).map(Advisor::counters)
    }
}

impl FrameSink for LlmSink {
    fn frame(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
    ) -> Result<(), SinkError> {
        let advisor = lock(&self.advisors)
            .entry(report.camera_id)
            .or_insert_with(|| Advisor::new(Arc::clone(&self.link)))
            .clone();
        advisor.offer(
            &report.scene.detections,
            report.scene,
            report.crops,
            report.timestamp,
        );
        if let Some((verdict, fresh)) = advisor.current() {
            annotate(result, &verdict, fresh);
        }
        Ok(())
    }

    fn event(&self, camera: CameraId, event: CameraEvent) {
        if event == CameraEvent::Removed {
            lock(&self.advisors).remove(&camera);
        }
    }
}

/// Analysed frames saved to disk (`storage.save_raw_frames`). A failing disk is counted on
/// every frame, logged once per camera until a save works again, and shown as the camera's
/// last error.
#[derive(Debug)]
pub struct StoreSink {
    store: FrameStore,
    metrics: Arc<Metrics>,
    failing: Mutex<HashSet<CameraId>>,
}

impl StoreSink {
    /// A sink saving into `store`.
    pub fn new(store: FrameStore, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            failing: Mutex::default(),
        }
    }
}

impl FrameSink for StoreSink {
    fn frame(&self, report: &FrameReport<'_>, _: &mut DetectionResult) -> Result<(), SinkError> {
        let Some(jpeg) = report.jpeg else {
            return Ok(());
        };
        let camera = report.camera_id;
        match self.store.save(camera, report.timestamp, None, jpeg) {
            Ok(_) => {
                if lock(&self.failing).remove(&camera) {
                    tracing::info!(camera, "saving frames works again");
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.error("save");
                if lock(&self.failing).insert(camera) {
                    tracing::warn!(camera, error = %e, "cannot save frame");
                }
                Err(SinkError(format!("cannot save frame: {e}")))
            }
        }
    }
}

/// The per-camera metric families: each camera's handles live from the hub adding it to the
/// hub removing it (then its series are retired, and late events of its old tasks count
/// nothing).
#[derive(Debug)]
pub struct MetricsSink {
    metrics: Arc<Metrics>,
    cameras: Mutex<HashMap<CameraId, CameraMetrics>>,
}

impl MetricsSink {
    /// A sink counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            cameras: Mutex::default(),
        }
    }

    fn camera(&self, id: CameraId) -> Option<CameraMetrics> {
        lock(&self.cameras).get(&id).cloned()
    }
}

impl FrameSink for MetricsSink {
    fn frame(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
    ) -> Result<(), SinkError> {
        let Some(m) = self.camera(report.camera_id) else {
            return Ok(());
        };
        m.analysed(
            &report.times,
            report.scene.detections.iter().map(|d| d.label.as_str()),
            report.scene.groups.len(),
        );
        for alert in report.new_alerts() {
            m.alert(
                alert.hit.level.as_str(),
                "rules",
                std::iter::once(alert.hit.kind.as_str()),
            );
        }
        // The LLM's findings at medium or above, on their first showing.
        for alert in result.dangerous_driving_results.iter().filter(|a| {
            a.source == AlertSource::Llm && !a.is_stale && a.risk_level >= RiskLevel::Medium
        }) {
            m.alert(
                alert.risk_level.as_str(),
                "llm",
                alert.risk_types.iter().map(String::as_str),
            );
        }
        Ok(())
    }

    fn event(&self, camera: CameraId, event: CameraEvent) {
        match event {
            CameraEvent::Added => {
                let handles = self.metrics.camera(camera);
                lock(&self.cameras).insert(camera, handles);
            }
            CameraEvent::Removed => {
                if let Some(m) = lock(&self.cameras).remove(&camera) {
                    m.retire();
                }
            }
            CameraEvent::Failed(stage) => self.metrics.error(stage.as_str()),
            CameraEvent::FramesReceived(n) => {
                if let Some(m) = self.camera(camera) {
                    m.frames_received.inc_by(n);
                }
            }
            CameraEvent::FramesDecoded(n) => {
                if let Some(m) = self.camera(camera) {
                    m.frames_decoded.inc_by(n);
                }
            }
            CameraEvent::FramesDropped(n) => {
                if let Some(m) = self.camera(camera) {
                    m.frames_dropped.inc_by(n);
                }
            }
            CameraEvent::Reconnecting => {
                if let Some(m) = self.camera(camera) {
                    m.reconnects.inc();
                }
            }
            CameraEvent::Picture(event) => {
                if let Some(m) = self.camera(camera) {
                    m.picture(event);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use camera::sink::{PictureEvent, Stage};

    use super::*;
    use crate::metrics::{InfoLabel, Sources, registry, render};

    #[test]
    fn camera_events_count_from_added_to_removed_and_nothing_after() {
        let metrics = Metrics::new(&InfoLabel {
            version: "1.2.3",
            mode: "standalone",
            model: "yolov8n.onnx".into(),
            llm_model: "off".into(),
        });
        let sink = MetricsSink::new(Arc::clone(&metrics));
        let text = || render(&registry(&metrics, Sources::default()));
        // Not added yet: nothing is created for it.
        sink.event(7, CameraEvent::FramesReceived(3));
        assert!(!text().contains("camera_id=\"7\""));
        sink.event(7, CameraEvent::Added);
        sink.event(7, CameraEvent::FramesReceived(25));
        sink.event(7, CameraEvent::FramesDecoded(2));
        sink.event(7, CameraEvent::FramesDropped(1));
        sink.event(7, CameraEvent::Reconnecting);
        sink.event(7, CameraEvent::Failed(Stage::Source));
        for event in [
            PictureEvent::AlertsHeld,
            PictureEvent::Froze,
            PictureEvent::AlertsHeld,
            PictureEvent::Cut,
            PictureEvent::Moved,
            PictureEvent::AlertsHeld,
        ] {
            sink.event(7, CameraEvent::Picture(event));
        }
        let shown = text();
        for line in [
            "frames_received_total{camera_id=\"7\"} 25\n",
            "frames_decoded_total{camera_id=\"7\"} 2\n",
            "frames_dropped_total{camera_id=\"7\"} 1\n",
            "stream_reconnects_total{camera_id=\"7\"} 1\n",
            "pipeline_errors_total{stage=\"source\"} 1\n",
            "picture_freezes_total{camera_id=\"7\"} 1\n",
            "picture_frozen{camera_id=\"7\"} 1\n",
            "picture_cuts_total{camera_id=\"7\"} 1\n",
            "picture_moves_total{camera_id=\"7\"} 1\n",
            "frames_alerts_held_total{camera_id=\"7\"} 3\n",
        ] {
            assert!(shown.contains(line), "no {line:?} in\n{shown}");
        }
        sink.event(7, CameraEvent::Picture(PictureEvent::Thawed));
        assert!(text().contains("picture_frozen{camera_id=\"7\"} 0\n"));
        // Removed: its series go, and a late event of its old task brings none back.
        sink.event(7, CameraEvent::Removed);
        sink.event(7, CameraEvent::FramesReceived(1));
        assert!(!text().contains("camera_id=\"7\""), "{}", text());
    }
}
