//! One camera's handles on the per-camera families: fetched once when the camera starts
//! ([`Metrics::camera`]), counted through on the hot path, and retired when it stops so that a
//! stopped camera's series leave `/metrics`.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::Metrics;
use super::labels::{AlertLabel, CameraLabel, ObjectLabel, RiskTypeLabel, risk_type_label};
use camera::sink::{PictureEvent, StageTimes};
use protocol::CameraId;

/// The per-camera series a camera created beyond its fixed ones, and whether it was retired.
#[derive(Debug, Default)]
struct Created {
    /// `detected_objects_total` by class.
    objects: std::collections::HashMap<String, Counter>,
    /// Set by [`CameraMetrics::retire`]: no new series from now on.
    retired: bool,
}

/// One camera's handles on the per-camera families, fetched once when the camera starts.
/// Camera ids are chosen by clients, so a camera's series are removed when it stops
/// ([`CameraMetrics::retire`]): `/metrics` stays the size of the running cameras.
#[derive(Debug, Clone)]
pub struct CameraMetrics {
    /// Camera id.
    pub camera_id: CameraId,
    /// `detection_total`.
    pub detections: Counter,
    /// `traffic_groups_total`.
    pub traffic_groups: Counter,
    /// `frames_received_total`.
    pub frames_received: Counter,
    /// `frames_decoded_total`.
    pub frames_decoded: Counter,
    /// `frames_dropped_total`.
    pub frames_dropped: Counter,
    /// `stream_reconnects_total`.
    pub reconnects: Counter,
    /// `picture_freezes_total`.
    pub picture_freezes: Counter,
    /// `picture_frozen`.
    pub picture_frozen: Gauge,
    /// `picture_cuts_total`.
    pub picture_cuts: Counter,
    /// `picture_moves_total`.
    pub picture_moves: Counter,
    /// `frames_alerts_held_total`.
    pub frames_alerts_held: Counter,
    /// The shared families.
    pub all: Arc<Metrics>,
    created: Arc<std::sync::Mutex<Created>>,
}

impl CameraMetrics {
    /// Counts one analysed frame: its stage times, objects and groups.
    pub fn analysed<'a>(
        &self,
        times: &StageTimes,
        classes: impl Iterator<Item = &'a str>,
        groups: usize,
    ) {
        self.detections.inc();
        self.all
            .detection_latency
            .observe(times.detect().as_secs_f64());
        for (stage, took) in times.named() {
            self.all.stage(stage, took);
        }
        let mut created = self.created();
        for class in classes {
            if let Some(counter) = created.objects.get(class) {
                counter.inc();
            } else if !created.retired {
                let counter = self
                    .all
                    .detected_objects
                    .get_or_create(&ObjectLabel {
                        camera_id: self.camera_id,
                        class: class.to_string(),
                    })
                    .clone();
                counter.inc();
                created.objects.insert(class.to_string(), counter);
            }
        }
        self.traffic_groups.inc_by(groups as u64);
    }

    fn created(&self) -> std::sync::MutexGuard<'_, Created> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every series of this camera from the families (the camera stopped). Counting
    /// on through these handles afterwards changes nothing that is shown, and creates nothing.
    pub fn retire(&self) {
        let mut created = self.created();
        created.retired = true;
        let label = CameraLabel {
            camera_id: self.camera_id,
        };
        let all = &self.all;
        for (_, _, family) in all.camera_counters() {
            family.remove(&label);
        }
        all.picture_frozen.remove(&label);
        for (class, _) in created.objects.drain() {
            all.detected_objects.remove(&ObjectLabel {
                camera_id: self.camera_id,
                class,
            });
        }
        for level in ["low", "medium", "high"] {
            for source in ["rules", "llm"] {
                all.risk_alerts.remove(&AlertLabel {
                    camera_id: self.camera_id,
                    level,
                    source,
                });
            }
        }
    }

    /// Counts what the camera's picture did.
    pub fn picture(&self, event: PictureEvent) {
        match event {
            PictureEvent::Froze => {
                self.picture_freezes.inc();
                self.picture_frozen.set(1);
            }
            PictureEvent::Thawed => {
                self.picture_frozen.set(0);
            }
            PictureEvent::Cut => {
                self.picture_cuts.inc();
            }
            PictureEvent::Moved => {
                self.picture_moves.inc();
            }
            PictureEvent::AlertsHeld => {
                self.frames_alerts_held.inc();
            }
        }
    }

    /// Counts an alert and its risk types.
    pub fn alert<'a>(
        &self,
        level: &'static str,
        source: &'static str,
        types: impl Iterator<Item = &'a str>,
    ) {
        // Held while the series is created, so that it cannot reappear after `retire`.
        let created = self.created();
        if created.retired {
            return;
        }
        self.all
            .risk_alerts
            .get_or_create(&AlertLabel {
                camera_id: self.camera_id,
                level,
                source,
            })
            .inc();
        for t in types {
            self.all
                .risk_types
                .get_or_create(&RiskTypeLabel {
                    risk_type: risk_type_label(t),
                    source,
                })
                .inc();
        }
    }
}

impl Metrics {
    /// Handles on camera `id`'s families (created at zero, so rates work at once).
    pub fn camera(self: &Arc<Self>, id: CameraId) -> CameraMetrics {
        let label = CameraLabel { camera_id: id };
        CameraMetrics {
            camera_id: id,
            detections: self.detections.get_or_create(&label).clone(),
            traffic_groups: self.traffic_groups.get_or_create(&label).clone(),
            frames_received: self.frames_received.get_or_create(&label).clone(),
            frames_decoded: self.frames_decoded.get_or_create(&label).clone(),
            frames_dropped: self.frames_dropped.get_or_create(&label).clone(),
            reconnects: self.reconnects.get_or_create(&label).clone(),
            picture_freezes: self.picture_freezes.get_or_create(&label).clone(),
            picture_frozen: self.picture_frozen.get_or_create(&label).clone(),
            picture_cuts: self.picture_cuts.get_or_create(&label).clone(),
            picture_moves: self.picture_moves.get_or_create(&label).clone(),
            frames_alerts_held: self.frames_alerts_held.get_or_create(&label).clone(),
            all: Arc::clone(self),
            created: Arc::default(),
        }
    }
}
