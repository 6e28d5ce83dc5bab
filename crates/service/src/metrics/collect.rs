//! Collectors over parts that keep their own books, read at each scrape: the camera hub
//! (`active_cameras`, `camera_online`) and the streaming loops (`tasks_generated_total`,
//! `tasks_processed_total`, `task_queue_size`, `aggregations_total`, `kafka_consumer_lag` and the
//! detector role's drops). Every family shows even when its part is not running (standalone mode shows the
//! streaming families at zero), so dashboards and alert rules never see a missing series.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::family::{counter, counters, gauge, gauges};
use crate::metrics::KafkaMetrics;
use camera::hub::CameraHub;
use protocol::server::CameraState;
use streaming::fleet::FleetStats;
use streaming::node::NodeStats;
use streaming::publisher::DetectorStats;

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
        gauges(
            &mut e,
            "camera_online",
            "1 while the camera's frames arrive, 0 while connecting, reconnecting or stopped",
            cameras.iter().map(|c| {
                let up = i64::from(c.state == CameraState::Online);
                ([("camera_id", c.camera_id)], up)
            }),
        )
    }
}

/// The measurement database's writer: rows written, failed writes, dropped and pending rows,
/// and whether the database is reachable (all zero with measurement off).
#[derive(Debug)]
pub struct DatabaseCollector {
    /// The writer, when measurement is on.
    pub writer: Option<store::WriterHandle>,
}

impl Collector for DatabaseCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.writer.as_ref().map(store::WriterHandle::stats);
        let get = |f: fn(&store::WriterStats) -> u64| s.as_ref().map_or(0, f);
        counter(
            &mut e,
            "database_rows_written",
            "measurement rows written to the database",
            get(|s| s.rows_written),
        )?;
        counter(
            &mut e,
            "database_write_errors",
            "failed measurement database operations (each is retried)",
            get(|s| s.write_errors),
        )?;
        counter(
            &mut e,
            "database_rows_dropped",
            "measurement rows dropped: no room while the database was unreachable",
            get(|s| s.rows_dropped),
        )?;
        gauge(
            &mut e,
            "database_pending_rows",
            "measurement rows waiting to be written",
            get(|s| s.pending_rows) as i64,
        )?;
        gauge(
            &mut e,
            "database_up",
            "1 while the measurement database takes writes (0 with measurement off)",
            i64::from(s.as_ref().is_some_and(|s| s.up)),
        )
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
            generated,
        )?;
        counters(
            &mut e,
            "tasks_processed",
            "LLM assessment tasks this process's llm-worker finished, by outcome",
            [
                ([("outcome", "done")], done),
                ([("outcome", "dead_letter")], dead),
            ],
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
        counters(
            &mut e,
            "aggregations",
            "detections merged with their LLM results, by outcome (partial: timed out)",
            [
                ([("outcome", "complete")], complete),
                ([("outcome", "partial")], partial),
                ([("outcome", "orphaned")], orphaned),
            ],
        )?;
        let fleet = node.map(|n| &n.fleet);
        let fleet_read =
            |f: fn(&FleetStats) -> &std::sync::atomic::AtomicU64| fleet.map_or(0, |s| read(f(s)));
        gauge(
            &mut e,
            "fleet_cameras_owned",
            "cameras this instance runs because the fleet's group membership gave them to it",
            fleet_read(|s| &s.owned) as i64,
        )?;
        gauge(
            &mut e,
            "fleet_cameras_waiting_lease",
            "cameras assigned to this instance that wait for their previous owner's lease to lapse",
            fleet_read(|s| &s.waiting) as i64,
        )?;
        counter(
            &mut e,
            "fleet_rebalances",
            "camera partitions assigned to or revoked from this instance (one per rebalance event)",
            fleet_read(|s| &s.rebalances),
        )?;
        counters(
            &mut e,
            "fleet_camera_moves",
            "cameras started or stopped here by a change of ownership or definition, or a lost lease",
            [
                ([("change", "started")], fleet_read(|s| &s.started)),
                ([("change", "stopped")], fleet_read(|s| &s.stopped)),
            ],
        )?;
        counters(
            &mut e,
            "fleet_live_messages",
            "messages of cameras watched on another instance than their own, by outcome: sent (by the instance running the camera), dropped, relayed (to this instance's watchers)",
            [
                ([("outcome", "sent")], fleet_read(|s| &s.live_sent)),
                ([("outcome", "dropped")], fleet_read(|s| &s.live_dropped)),
                ([("outcome", "relayed")], fleet_read(|s| &s.live_relayed)),
            ],
        )?;
        counter(
            &mut e,
            "fleet_idle_cameras_ended",
            "client cameras this instance ended because no instance had a watcher left",
            fleet_read(|s| &s.idle_ended),
        )?;
        counters(
            &mut e,
            "fleet_camera_definitions",
            "camera definitions this instance declared to the fleet, by outcome (dropped: queue full)",
            [
                (
                    [("outcome", "written")],
                    fleet_read(|s| &s.definitions_written),
                ),
                (
                    [("outcome", "dropped")],
                    fleet_read(|s| &s.definitions_dropped),
                ),
            ],
        )?;
        let lags = self.kafka.lags();
        gauges(
            &mut e,
            "kafka_consumer_lag",
            "messages behind the end of each topic, per consumer group",
            lags.iter().map(|(label, lag)| {
                let labels = [
                    ("topic", label.topic.as_str()),
                    ("group", label.group.as_str()),
                ];
                (labels, *lag)
            }),
        )?;
        let deps = node.map(|n| &n.dependencies);
        gauges(
            &mut e,
            "streaming_dependency_up",
            "1 while a dependency of streaming mode answers its probe (every 2 s), by dependency",
            [
                (
                    [("dependency", "kafka")],
                    deps.is_some_and(|d| d.kafka_up()),
                ),
                (
                    [("dependency", "redis")],
                    deps.is_some_and(|d| d.redis_up()),
                ),
            ]
            .map(|(labels, up)| (labels, i64::from(up))),
        )?;
        let dropped = self.publisher.as_ref().map_or(0, |p| read(&p.dropped));
        counter(
            &mut e,
            "kafka_publish_dropped",
            "detection results not sent to the broker (queue full, too large or refused)",
            dropped,
        )?;
        counter(
            &mut e,
            "llm_cooldown_skipped",
            "frames with groups a detector did not send to the LLM: their camera's llm.cooldown_seconds had not passed",
            self.publisher.as_ref().map_or(0, |p| read(&p.cooled)),
        )
    }
}
