//! Prometheus metrics (SPEC 7) at `GET /metrics`, in the OpenMetrics text format of the
//! `prometheus-client` crate. Two kinds of source: [`Metrics`] holds the families that the hot
//! paths update themselves (atomic counters and histograms, one handle per camera fetched once),
//! and collectors read the parts that already keep their own books (the API-key pool, the camera
//! hub, the streaming loops) when a scrape comes, so nothing is counted twice. Counters get the
//! `_total` suffix from the encoder (`detection` is exposed as `detection_total`). Labels are
//! bounded: camera id, class, level, rule type, topic, consumer group, never a URL or track id.
//!
//! Here: [`Metrics`] and its counting helpers. `labels`: the label sets and their bounded
//! values; `per_camera`: one camera's handles ([`CameraMetrics`]); `register`: names, help and
//! the registry; `text`: the OpenMetrics and classic text formats; `collect`, `key_pool`: the
//! collectors.

pub mod collect;
mod family;
pub mod key_pool;
mod labels;
mod per_camera;
mod register;
mod text;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

pub use labels::{
    AlertLabel, CameraLabel, CrossingLabel, EndpointLabel, InfoLabel, LIMITS, LaneLabel,
    LimitLabel, ObjectLabel, RISK_TYPES, RiskTypeLabel, StageLabel, WsTypeLabel, risk_type_label,
};
pub use per_camera::CameraMetrics;
pub use register::{Sources, registry};
pub use streaming::counters::{KafkaMetrics, LagLabel, TopicLabel};
pub use text::{OPENMETRICS, PROMETHEUS_TEXT, render, to_prometheus_text};

/// Lane speeds, km/h: 5 km/h buckets to 150.
fn speed_histogram() -> Histogram {
    Histogram::new((1..=30).map(|k| f64::from(k) * 5.0))
}

/// Latency bounds, seconds: fine where frame latency lives (a 150 ms target can be read off a
/// bucket bound), coarse up to the LLM's tens of seconds.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
    20.0, 40.0, 60.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The stages of a frame's way from its arrival to a client's socket, in order
/// (`frame_stage_seconds{stage}`): the sample decoded, waiting for an inference session, the
/// detector's run, the judging (tracks, groups, rules, crops, JPEG), and the delivery (sinks,
/// JSON, the watcher's queue, the socket).
pub const FRAME_STAGES: [&str; 5] = ["decode", "queue", "inference", "judge", "deliver"];

/// The families the service's hot paths update.
#[derive(Debug)]
pub struct Metrics {
    /// Frames run through the detector (`detection_total`).
    pub detections: Family<CameraLabel, Counter>,
    /// Detector time per frame, queueing for the inference thread included.
    pub detection_latency: Histogram,
    /// Objects detected, by class (`detected_objects_total`).
    pub detected_objects: Family<ObjectLabel, Counter>,
    /// Traffic groups found, summed over frames (`traffic_groups_total`).
    pub traffic_groups: Family<CameraLabel, Counter>,
    /// Alerts raised: rules firing anew, fresh LLM findings at `medium` or above.
    pub risk_alerts: Family<AlertLabel, Counter>,
    /// Risk types of those alerts.
    pub risk_types: Family<RiskTypeLabel, Counter>,
    /// Errors by stage (`pipeline_errors_total`).
    pub pipeline_errors: Family<StageLabel, Counter>,
    /// Encoded frames received from sources.
    pub frames_received: Family<CameraLabel, Counter>,
    /// Frames decoded.
    pub frames_decoded: Family<CameraLabel, Counter>,
    /// Frames due for analysis but dropped (analysis busy, or the sampler's buffer overflowed).
    pub frames_dropped: Family<CameraLabel, Counter>,
    /// Reconnects after a source failed.
    pub reconnects: Family<CameraLabel, Counter>,
    /// Times a camera's picture froze.
    pub picture_freezes: Family<CameraLabel, Counter>,
    /// 1 while a camera's picture is frozen.
    pub picture_frozen: Family<CameraLabel, Gauge>,
    /// Scene cuts: a camera's picture replaced by another.
    pub picture_cuts: Family<CameraLabel, Counter>,
    /// Analysed frames whose whole picture shifted (the camera moved or shook).
    pub picture_moves: Family<CameraLabel, Counter>,
    /// Analysed frames whose rule alerts were held (picture repeated, frozen, cut, moved, or
    /// settling after one of those).
    pub frames_alerts_held: Family<CameraLabel, Counter>,
    /// Line crossings (`traffic_line_crossings_total`).
    pub line_crossings: Family<CrossingLabel, Counter>,
    /// Measured lane speeds (`traffic_lane_speed_kmh`).
    pub lane_speeds: Family<LaneLabel, Histogram, fn() -> Histogram>,
    /// Measures that came after their bin was gone (the clock jumped).
    pub measures_late: Counter,
    /// Open WebSocket connections.
    pub ws_clients: Gauge,
    /// WebSocket connections accepted.
    pub ws_connections: Counter,
    /// Messages from WebSocket clients, by type.
    pub ws_received: Family<WsTypeLabel, Counter>,
    /// Messages written to WebSocket clients.
    pub ws_sent: Counter,
    /// Messages dropped for slow WebSocket clients.
    pub ws_dropped: Counter,
    /// From the sampled frame's arrival to its `detection_result` written to a client.
    pub end_to_end_latency: Histogram,
    /// Where that time goes, by stage (`frame_stage_seconds`).
    pub frame_stages: Family<StageLabel, Histogram, fn() -> Histogram>,
    /// Requests refused for a missing or wrong token.
    pub auth_failures: Family<EndpointLabel, Counter>,
    /// Client limits hit.
    pub limit_hits: Family<LimitLabel, Counter>,
    /// Saved frames deleted by the retention (`storage.retention_days`, `storage.max_size_mb`).
    pub saved_frames_deleted: Counter,
    /// Bytes of saved frames on disk, as of the last prune.
    pub saved_frames_bytes: Gauge,
    /// Kafka traffic (streaming mode).
    pub kafka: Arc<KafkaMetrics>,
    info: Family<InfoLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            detections: Family::default(),
            detection_latency: latency_histogram(),
            detected_objects: Family::default(),
            traffic_groups: Family::default(),
            risk_alerts: Family::default(),
            risk_types: Family::default(),
            pipeline_errors: Family::default(),
            frames_received: Family::default(),
            frames_decoded: Family::default(),
            frames_dropped: Family::default(),
            reconnects: Family::default(),
            picture_freezes: Family::default(),
            picture_frozen: Family::default(),
            picture_cuts: Family::default(),
            picture_moves: Family::default(),
            frames_alerts_held: Family::default(),
            line_crossings: Family::default(),
            lane_speeds: Family::new_with_constructor(speed_histogram),
            measures_late: Counter::default(),
            ws_clients: Gauge::default(),
            ws_connections: Counter::default(),
            ws_received: Family::default(),
            ws_sent: Counter::default(),
            ws_dropped: Counter::default(),
            end_to_end_latency: latency_histogram(),
            frame_stages: Family::new_with_constructor(latency_histogram),
            auth_failures: Family::default(),
            limit_hits: Family::default(),
            saved_frames_deleted: Counter::default(),
            saved_frames_bytes: Gauge::default(),
            kafka: Arc::default(),
            info: Family::default(),
        }
    }
}

impl Metrics {
    /// The families, with `system_info` set.
    pub fn new(info: &InfoLabel) -> Arc<Self> {
        let m = Self::default();
        m.info.get_or_create(info).set(1);
        for stage in [
            "source",
            "decode",
            "detect",
            "encode",
            "inference",
            "save",
            "snapshot",
            "analysis",
        ] {
            let _ = m.pipeline_errors.get_or_create(&StageLabel { stage });
        }
        for stage in FRAME_STAGES {
            let _ = m.frame_stages.get_or_create(&StageLabel { stage });
        }
        for endpoint in ["api", "ws"] {
            let _ = m.auth_failures.get_or_create(&EndpointLabel { endpoint });
        }
        for limit in LIMITS {
            let _ = m.limit_hits.get_or_create(&LimitLabel { limit });
        }
        Arc::new(m)
    }

    /// Counts an error at `stage` (`pipeline_errors_total`).
    pub fn error(&self, stage: &'static str) {
        self.pipeline_errors
            .get_or_create(&StageLabel { stage })
            .inc();
    }

    /// Times one frame's `stage` (one of [`FRAME_STAGES`]).
    pub fn stage(&self, stage: &'static str, took: std::time::Duration) {
        self.frame_stages
            .get_or_create(&StageLabel { stage })
            .observe(took.as_secs_f64());
    }

    /// Counts a request refused for its token.
    pub fn auth_failure(&self, endpoint: &'static str) {
        self.auth_failures
            .get_or_create(&EndpointLabel { endpoint })
            .inc();
    }

    /// Counts a client limit hit.
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&LimitLabel { limit }).inc();
    }

    /// Counts a message from a WebSocket client.
    pub fn ws_message(&self, r#type: &'static str) {
        self.ws_received
            .get_or_create(&WsTypeLabel { r#type })
            .inc();
    }

    /// The families labelled by camera only, with their names and help: registered together,
    /// and a stopped camera's series removed from each.
    fn camera_counters(&self) -> [(&'static str, &'static str, &Family<CameraLabel, Counter>); 10] {
        [
            (
                "detection",
                "frames run through the detector",
                &self.detections,
            ),
            (
                "traffic_groups",
                "traffic groups found, summed over frames",
                &self.traffic_groups,
            ),
            (
                "frames_received",
                "encoded frames received from the source",
                &self.frames_received,
            ),
            ("frames_decoded", "frames decoded", &self.frames_decoded),
            (
                "frames_dropped",
                "frames due for analysis but dropped (analysis busy or buffer full)",
                &self.frames_dropped,
            ),
            (
                "stream_reconnects",
                "reconnects after the source failed",
                &self.reconnects,
            ),
            (
                "picture_freezes",
                "times the picture froze (unchanged for 3 s: a frozen encoder or camera)",
                &self.picture_freezes,
            ),
            (
                "picture_cuts",
                "scene cuts: the picture replaced by another (tracks start over)",
                &self.picture_cuts,
            ),
            (
                "picture_moves",
                "analysed frames whose whole picture shifted (the camera moved or shook)",
                &self.picture_moves,
            ),
            (
                "frames_alerts_held",
                "analysed frames whose rule alerts were held (picture repeated, frozen, cut, \
                 moved, or settling after one of those)",
                &self.frames_alerts_held,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use camera::sink::StageTimes;

    use super::*;

    #[test]
    fn families_show_with_their_suffixes_and_labels() {
        let m = Metrics::new(&InfoLabel {
            version: "1.2.3",
            mode: "standalone",
            model: "yolov8n.onnx".into(),
            llm_model: "off".into(),
        });
        let cam = m.camera(7);
        let times = StageTimes {
            decode: Duration::from_millis(12),
            queue: Duration::from_millis(30),
            inference: Duration::from_millis(40),
            judge: Duration::from_millis(8),
        };
        cam.analysed(&times, ["car", "car", "person"].into_iter(), 2);
        m.stage("deliver", Duration::from_millis(3));
        cam.alert("high", "llm", ["Cut-in", "whatever"].into_iter());
        m.kafka.on_send("detection-results", true);
        let text = render(&registry(&m, Sources::default()));
        for line in [
            "detection_total{camera_id=\"7\"} 1\n",
            "detected_objects_total{camera_id=\"7\",class=\"car\"} 2\n",
            "traffic_groups_total{camera_id=\"7\"} 2\n",
            "detection_latency_seconds_count 1\n",
            "detection_latency_seconds_bucket{le=\"0.05\"} 0\n",
            "detection_latency_seconds_bucket{le=\"0.075\"} 1\n",
            "frame_stage_seconds_bucket{le=\"0.01\",stage=\"decode\"} 0\n",
            "frame_stage_seconds_bucket{le=\"0.025\",stage=\"decode\"} 1\n",
            "frame_stage_seconds_count{stage=\"inference\"} 1\n",
            "frame_stage_seconds_bucket{le=\"0.005\",stage=\"deliver\"} 1\n",
            "risk_alerts_total{camera_id=\"7\",level=\"high\",source=\"llm\"} 1\n",
            "risk_types_detected_total{risk_type=\"cut_in\",source=\"llm\"} 1\n",
            "risk_types_detected_total{risk_type=\"other\",source=\"llm\"} 1\n",
            "frames_dropped_total{camera_id=\"7\"} 0\n",
            "pipeline_errors_total{stage=\"decode\"} 0\n",
            "kafka_messages_sent_total{topic=\"detection-results\"} 1\n",
            "system_info{version=\"1.2.3\",mode=\"standalone\",model=\"yolov8n.onnx\",llm_model=\"off\"} 1\n",
            "active_cameras 0\n",
            "tasks_generated_total 0\n",
            "# TYPE kafka_consumer_lag gauge\n",
            "api_key_pool_size 0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }

        // A stopped camera's series go; another camera's stay; counting on creates nothing.
        let other = m.camera(8);
        other.analysed(&times, ["bus"].into_iter(), 0);
        cam.retire();
        cam.analysed(&times, ["truck"].into_iter(), 1);
        cam.alert("low", "rules", std::iter::empty());
        let text = render(&registry(&m, Sources::default()));
        assert!(!text.contains("camera_id=\"7\""), "{text}");
        assert!(
            text.contains("detected_objects_total{camera_id=\"8\",class=\"bus\"} 1\n"),
            "{text}"
        );
        // The same id started again counts from zero.
        m.camera(7).analysed(&times, ["car"].into_iter(), 0);
        let text = render(&registry(&m, Sources::default()));
        assert!(
            text.contains("detected_objects_total{camera_id=\"7\",class=\"car\"} 1\n"),
            "{text}"
        );
    }
}
