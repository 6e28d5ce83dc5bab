//! Collectors over parts that keep their own books, read at each scrape: the camera hub
//! (`active_cameras`, `camera_online`) and the streaming loops (`tasks_generated_total`,
//! `tasks_processed_total`, `task_queue_size`, `aggregations_total`, `kafka_consumer_lag` and the
//! detector role's drops). Every family shows even when its part is not running (standalone mode shows the
//! streaming families at zero), so dashboards and alert rules never see a missing series.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::llm::gauge;
use crate::camera::hub::CameraHub;
use crate::camera::state::State;
use crate::metrics::KafkaMetrics;
use crate::streaming::detector::DetectorStats;
use crate::streaming::node::NodeStats;

/// `active_cameras` and `camera_online{camera_id}` from the hub.
#[derive(Debug)]
pub struct CameraCollector {
    /// The cameras.
    pub hub: Option<Arc<CameraHub>>,
}

impl Collector for CameraCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cameras = self.hub.as_ref().map(|h| h.cameras()).unwrap_or_default();
        gauge(
            &mut e,
            "active_cameras",
            "cameras running (any state)",
            cameras.len() as i64,
        )?;
        let g = ConstGauge::new(0i64);
        let mut m = e.encode_descriptor(
            "camera_online",
            "1 while the camera's frames arrive, 0 while connecting, reconnecting or stopped",
            None,
            g.metric_type(),
        )?;
        for c in &cameras {
            let up = i64::from(c.state == State::Online);
            ConstGauge::new(up).encode(m.encode_family(&[("camera_id", c.camera_id)])?)?;
        }
        Ok(())
    }
}

/// The streaming families from this process's consume loops.
#[derive(Debug)]
pub struct StreamingCollector {
    /// The loops' counters (streaming mode).
    pub node: Option<Arc<NodeStats>>,
    /// The detector role's queue to the broker.
    pub publisher: Option<Arc<DetectorStats>>,
    /// The consumers' lag.
    pub kafka: Arc<KafkaMetrics>,
}

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    values: &[u64],
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(0u64);
    let mut m = e.encode_descriptor(name, help, None, c.metric_type())?;
    if labels.is_empty() {
        return ConstCounter::new(values[0]).encode(m);
    }
    for ((key, value), n) in labels.iter().zip(values) {
        ConstCounter::new(*n).encode(m.encode_family(&[(*key, *value)])?)?;
    }
    Ok(())
}

impl Collector for StreamingCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let read = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let node = self.node.as_deref();
        let (generated, done, dead, queued) = node.map_or((0, 0, 0, 0), |n| {
            let w = &n.llm_worker;
            let finished = read(&w.handled) + read(&w.dead_lettered) + read(&w.duplicates);
            (
                read(&n.tasks.sent),
                read(&w.handled),
                read(&w.dead_lettered),
                read(&w.received).saturating_sub(finished),
            )
        });
        counter(
            &mut e,
            "tasks_generated",
            "LLM assessment tasks this process's tasks role sent to the broker",
            &[],
            &[generated],
        )?;
        counter(
            &mut e,
            "tasks_processed",
            "LLM assessment tasks this process's llm-worker finished, by outcome",
            &[("outcome", "done"), ("outcome", "dead_letter")],
            &[done, dead],
        )?;
        gauge(
            &mut e,
            "task_queue_size",
            "LLM assessment tasks taken from the broker and not yet finished here",
            queued as i64,
        )?;
        let (complete, partial, orphaned) = node.map_or((0, 0, 0), |n| {
            let a = &n.aggregations;
            (read(&a.complete), read(&a.partial), read(&a.orphaned))
        });
        counter(
            &mut e,
            "aggregations",
            "detections merged with their LLM results, by outcome (partial: timed out)",
            &[
                ("outcome", "complete"),
                ("outcome", "partial"),
                ("outcome", "orphaned"),
            ],
            &[complete, partial, orphaned],
        )?;
        let g = ConstGauge::new(0i64);
        let mut m = e.encode_descriptor(
            "kafka_consumer_lag",
            "messages behind the end of each topic, per consumer group",
            None,
            g.metric_type(),
        )?;
        for (label, lag) in self.kafka.lags() {
            let labels = [
                ("topic", label.topic.as_str()),
                ("group", label.group.as_str()),
            ];
            ConstGauge::new(lag).encode(m.encode_family(&labels)?)?;
        }
        let dropped = self.publisher.as_ref().map_or(0, |p| read(&p.dropped));
        counter(
            &mut e,
            "kafka_publish_dropped",
            "detection results not sent to the broker (queue full, too large or refused)",
            &[],
            &[dropped],
        )?;
        Ok(())
    }
}
