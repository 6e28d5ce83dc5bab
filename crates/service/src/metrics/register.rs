//! Registration: every family of [`Metrics`] under its name and help, in the order `/metrics`
//! shows them, and the collectors that read the rest at scrape time.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::{Metrics, collect, key_pool};

impl Metrics {
    /// Registers every family in `r`.
    fn register(&self, r: &mut Registry) {
        self.register_pipeline(r);
        self.register_clients(r);
        self.register_storage(r);
        self.register_kafka(r);
        r.register(
            "system_info",
            "version, mode and models of this process (always 1)",
            self.info.clone(),
        );
    }

    /// The camera pipeline: per-camera counters, detection, alerts and errors.
    fn register_pipeline(&self, r: &mut Registry) {
        for (name, help, family) in self.camera_counters() {
            r.register(name, help, family.clone());
        }
        r.register(
            "picture_frozen",
            "1 while the camera's picture is frozen",
            self.picture_frozen.clone(),
        );
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
            "traffic_line_crossings",
            "count-line crossings by camera, line, direction and class (scene lines)",
            self.line_crossings.clone(),
        );
        r.register(
            "traffic_lane_speed_kmh",
            "calibrated speed of each vehicle's pass through a lane, km/h",
            self.lane_speeds.clone(),
        );
        r.register(
            "traffic_measures_late",
            "measures that came after their bin was written and forgotten (clock jumps)",
            self.measures_late.clone(),
        );
        r.register(
            "pipeline_errors",
            "pipeline errors by stage",
            self.pipeline_errors.clone(),
        );
    }

    /// WebSocket clients, the end-to-end latency they see, refused tokens and client limits.
    fn register_clients(&self, r: &mut Registry) {
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
            "frame_stage_seconds",
            "where a frame's time goes on its way to a client: decode, queue (for an inference session), inference, judge, deliver",
            self.frame_stages.clone(),
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
    }

    /// Saved frames and their retention.
    fn register_storage(&self, r: &mut Registry) {
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
    }

    /// Kafka traffic (streaming mode).
    fn register_kafka(&self, r: &mut Registry) {
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
    /// The measurement database's writer.
    pub database: Option<store::WriterHandle>,
}

/// The registry behind `/metrics`.
pub fn registry(metrics: &Metrics, sources: Sources) -> Registry {
    let mut r = Registry::default();
    metrics.register(&mut r);
    r.register_collector(Box::new(key_pool::LlmCollector::new(sources.pool)));
    r.register_collector(Box::new(collect::CameraCollector { hub: sources.hub }));
    r.register_collector(Box::new(collect::DatabaseCollector {
        writer: sources.database,
    }));
    r.register_collector(Box::new(collect::StreamingCollector {
        node: sources.node,
        publisher: sources.publisher,
        kafka: Arc::clone(&metrics.kafka),
    }));
    r
}
