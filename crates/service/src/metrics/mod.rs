//! Prometheus metrics (SPEC 7) at `GET /metrics`, in the OpenMetrics text format of the
//! `prometheus-client` crate. Two kinds of source: [`Metrics`] holds the families that the hot
//! paths update themselves (atomic counters and histograms, one handle per camera fetched once),
//! and collectors read the parts that already keep their own books (the API-key pool, the camera
//! hub, the streaming loops) when a scrape comes, so nothing is counted twice. Counters get the
//! `_total` suffix from the encoder (`detection` is exposed as `detection_total`). Labels are
//! bounded: camera id, class, level, rule type, topic, consumer group, never a URL or track id.

pub mod collect;
mod family;
pub mod key_pool;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use protocol::CameraId;
pub use streaming::counters::{KafkaMetrics, LagLabel, TopicLabel};

/// A camera's families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    /// Camera id.
    pub camera_id: CameraId,
}

/// Detected objects by camera and class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabel {
    /// Camera id.
    pub camera_id: CameraId,
    /// Detector class (the model's class list bounds it).
    pub class: String,
}

/// Alerts by camera, level and where they came from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// Camera id.
    pub camera_id: CameraId,
    /// `low`, `medium` or `high`.
    pub level: &'static str,
    /// `rules` or `llm`.
    pub source: &'static str,
}

/// Risk types by name and source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RiskTypeLabel {
    /// One of [`RISK_TYPES`] (anything else an LLM says counts as `other`).
    pub risk_type: &'static str,
    /// `rules` or `llm`.
    pub source: &'static str,
}

/// Pipeline errors by stage.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `source`, `decode`, `detect`, `encode`, `inference`, `save` or `analysis`.
    pub stage: &'static str,
}

/// WebSocket messages from clients by type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WsTypeLabel {
    /// A protocol message type, or `invalid` for anything that did not parse.
    pub r#type: &'static str,
}

/// Requests refused for a missing or wrong token, by endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// `api` or `ws`.
    pub endpoint: &'static str,
}

/// Client limits hit, by limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// One of [`LIMITS`].
    pub limit: &'static str,
}

/// What `system_info` says.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabel {
    /// Crate version.
    pub version: &'static str,
    /// `standalone` or `streaming`.
    pub mode: &'static str,
    /// Detector model file name.
    pub model: String,
    /// LLM model, or `off`.
    pub llm_model: String,
}

/// The client limits, as counted in `client_limit_hits_total`.
pub const LIMITS: [&str; 6] = [
    "connections",
    "connections_per_ip",
    "message_rate",
    "message_size",
    "flood",
    "camera_checks",
];

/// Risk types counted by name; every other LLM risk type is `other`.
pub const RISK_TYPES: [&str; 11] = [
    "tailgating",
    "pedestrian_conflict",
    "wrong_way",
    "sudden_stop",
    "illegal_stop",
    "congestion",
    "speeding",
    "cut_in",
    "red_light",
    "unsafe_lane_change",
    "other",
];

/// The label for a risk type as a model may spell it (`Cut-in`, `red light`, `闯红灯` -> `other`).
pub fn risk_type_label(name: &str) -> &'static str {
    let norm: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    RISK_TYPES
        .iter()
        .find(|t| **t == norm)
        .copied()
        .unwrap_or("other")
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

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
            ws_clients: Gauge::default(),
            ws_connections: Counter::default(),
            ws_received: Family::default(),
            ws_sent: Counter::default(),
            ws_dropped: Counter::default(),
            end_to_end_latency: latency_histogram(),
            auth_failures: Family::default(),
            limit_hits: Family::default(),
            saved_frames_deleted: Counter::default(),
            saved_frames_bytes: Gauge::default(),
            kafka: Arc::default(),
            info: Family::default(),
        }
    }
}

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
    /// The shared families.
    pub all: Arc<Metrics>,
    created: Arc<std::sync::Mutex<Created>>,
}

impl CameraMetrics {
    /// Counts one analysed frame: its detection time, objects and groups.
    pub fn analysed<'a>(
        &self,
        detect_time: Duration,
        classes: impl Iterator<Item = &'a str>,
        groups: usize,
    ) {
        self.detections.inc();
        self.all
            .detection_latency
            .observe(detect_time.as_secs_f64());
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
            "analysis",
        ] {
            let _ = m.pipeline_errors.get_or_create(&StageLabel { stage });
        }
        for endpoint in ["api", "ws"] {
            let _ = m.auth_failures.get_or_create(&EndpointLabel { endpoint });
        }
        for limit in LIMITS {
            let _ = m.limit_hits.get_or_create(&LimitLabel { limit });
        }
        Arc::new(m)
    }

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
            all: Arc::clone(self),
            created: Arc::default(),
        }
    }

    /// Counts an error at `stage` (`pipeline_errors_total`).
    pub fn error(&self, stage: &'static str) {
        self.pipeline_errors
            .get_or_create(&StageLabel { stage })
            .inc();
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
    fn camera_counters(&self) -> [(&'static str, &'static str, &Family<CameraLabel, Counter>); 6] {
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
        ]
    }

    /// Registers every family in `r`.
    fn register(&self, r: &mut Registry) {
        for (name, help, family) in self.camera_counters() {
            r.register(name, help, family.clone());
        }
        r.register(
            "detection_latency_seconds",
            "detector time per frame, waiting for the inference thread included",
            self.detection_latency.clone(),
        );
        r.register(
            "detected_objects",
            "objects detected, by class",
            self.detected_objects.clone(),
        );
        r.register(
            "risk_alerts",
            "alerts raised (rules firing anew, fresh LLM findings at medium or above)",
            self.risk_alerts.clone(),
        );
        r.register(
            "risk_types_detected",
            "risk types of the alerts raised",
            self.risk_types.clone(),
        );
        r.register(
            "pipeline_errors",
            "pipeline errors by stage",
            self.pipeline_errors.clone(),
        );
        r.register(
            "ws_clients",
            "open WebSocket connections",
            self.ws_clients.clone(),
        );
        r.register(
            "ws_connections",
            "WebSocket connections accepted",
            self.ws_connections.clone(),
        );
        r.register(
            "ws_messages_received",
            "messages from WebSocket clients, by type",
            self.ws_received.clone(),
        );
        r.register(
            "ws_messages_sent",
            "messages written to WebSocket clients",
            self.ws_sent.clone(),
        );
        r.register(
            "ws_messages_dropped",
            "messages dropped for slow WebSocket clients",
            self.ws_dropped.clone(),
        );
        r.register(
            "end_to_end_latency_seconds",
            "from the sampled frame's arrival to its detection_result written to a client",
            self.end_to_end_latency.clone(),
        );
        r.register(
            "auth_failures",
            "requests refused for a missing or wrong token, by endpoint",
            self.auth_failures.clone(),
        );
        r.register(
            "client_limit_hits",
            "client limits hit: connections (total, per address), message rate and size, floods",
            self.limit_hits.clone(),
        );
        r.register(
            "saved_frames_deleted",
            "saved frames deleted by the retention (age and size limits)",
            self.saved_frames_deleted.clone(),
        );
        r.register(
            "saved_frames_bytes",
            "bytes of saved frames on disk, as of the last prune (every minute)",
            self.saved_frames_bytes.clone(),
        );
        r.register(
            "kafka_messages_sent",
            "messages the broker acknowledged",
            self.kafka.sent.clone(),
        );
        r.register(
            "kafka_messages_received",
            "messages consumed",
            self.kafka.received.clone(),
        );
        r.register(
            "kafka_send_errors",
            "messages that could not be sent",
            self.kafka.send_errors.clone(),
        );
        r.register(
            "system_info",
            "version, mode and models of this process (always 1)",
            self.info.clone(),
        );
    }
}

/// Everything `/metrics` reads.
#[derive(Debug, Default)]
pub struct Sources {
    /// The key pool, when the LLM is on.
    pub pool: Option<Arc<llm::pool::KeyPool>>,
    /// The cameras.
    pub hub: Option<Arc<camera::hub::CameraHub>>,
    /// The streaming loops, in streaming mode.
    pub node: Option<Arc<streaming::node::NodeStats>>,
    /// The detector role's queue to the broker.
    pub publisher: Option<Arc<streaming::publisher::DetectorStats>>,
}

/// The registry behind `/metrics`.
pub fn registry(metrics: &Metrics, sources: Sources) -> Registry {
    let mut r = Registry::default();
    metrics.register(&mut r);
    r.register_collector(Box::new(key_pool::LlmCollector::new(sources.pool)));
    r.register_collector(Box::new(collect::CameraCollector { hub: sources.hub }));
    r.register_collector(Box::new(collect::StreamingCollector {
        node: sources.node,
        publisher: sources.publisher,
        kafka: Arc::clone(&metrics.kafka),
    }));
    r
}

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    out
}

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text turned into the classic Prometheus text format (0.0.4), for scrapers that
/// do not ask for OpenMetrics (and `promtool check metrics`, which only reads the classic one).
/// The two differ, for what we emit, in three things: a counter family is named without
/// `_total` in OpenMetrics' `# HELP`/`# TYPE` lines but with it in the classic format, and the
/// classic format has no `# UNIT` lines and no `# EOF` line. Samples are the same.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = help.replace(rest) {
                push_line(&mut out, &["# HELP ", h]);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = kind == "counter" && !name.ends_with("_total");
            let suffix = if counter { "_total" } else { "" };
            if let Some(h) = help.take() {
                let text = h.strip_prefix(name).unwrap_or(h);
                push_line(&mut out, &["# HELP ", name, suffix, text]);
            }
            push_line(&mut out, &["# TYPE ", name, suffix, " ", kind]);
            continue;
        }
        if let Some(h) = help.take() {
            push_line(&mut out, &["# HELP ", h]);
        }
        push_line(&mut out, &[line]);
    }
    out
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP llm_requests LLM requests.\n# TYPE llm_requests counter\n\
                  llm_requests_total{status=\"success\"} 3\n\
                  # HELP up_seconds Uptime.\n# TYPE up_seconds gauge\n# UNIT up_seconds seconds\n\
                  up_seconds 5\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP llm_requests_total LLM requests.\n# TYPE llm_requests_total counter\n\
             llm_requests_total{status=\"success\"} 3\n\
             # HELP up_seconds Uptime.\n# TYPE up_seconds gauge\nup_seconds 5\n"
        );
    }

    #[test]
    fn risk_types_are_bounded() {
        assert_eq!(risk_type_label("Cut-in"), "cut_in");
        assert_eq!(risk_type_label(" red light "), "red_light");
        assert_eq!(risk_type_label("tailgating"), "tailgating");
        assert_eq!(risk_type_label("闯红灯"), "other");
        assert_eq!(risk_type_label("https://x/y"), "other");
    }

    #[test]
    fn families_show_with_their_suffixes_and_labels() {
        let m = Metrics::new(&InfoLabel {
            version: "1.2.3",
            mode: "standalone",
            model: "yolov8n.onnx".into(),
            llm_model: "off".into(),
        });
        let cam = m.camera(7);
        cam.analysed(
            Duration::from_millis(40),
            ["car", "car", "person"].into_iter(),
            2,
        );
        cam.alert("high", "llm", ["Cut-in", "whatever"].into_iter());
        m.kafka.on_send("detection-results", true);
        let text = render(&registry(&m, Sources::default()));
        for line in [
            "detection_total{camera_id=\"7\"} 1\n",
            "detected_objects_total{camera_id=\"7\",class=\"car\"} 2\n",
            "traffic_groups_total{camera_id=\"7\"} 2\n",
            "detection_latency_seconds_count 1\n",
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
        other.analysed(Duration::from_millis(40), ["bus"].into_iter(), 0);
        cam.retire();
        cam.analysed(Duration::from_millis(40), ["truck"].into_iter(), 1);
        cam.alert("low", "rules", std::iter::empty());
        let text = render(&registry(&m, Sources::default()));
        assert!(!text.contains("camera_id=\"7\""), "{text}");
        assert!(
            text.contains("detected_objects_total{camera_id=\"8\",class=\"bus\"} 1\n"),
            "{text}"
        );
        // The same id started again counts from zero.
        m.camera(7)
            .analysed(Duration::from_millis(40), ["car"].into_iter(), 0);
        let text = render(&registry(&m, Sources::default()));
        assert!(
            text.contains("detected_objects_total{camera_id=\"7\",class=\"car\"} 1\n"),
            "{text}"
        );
    }
}
