//! Whether streaming mode's dependencies answer: the Kafka cluster (a metadata request through
//! the producer's connection) and Redis (`PING`), probed every [`PROBE_INTERVAL`] in the
//! background, and whether the topics are ready, for the health check (`DEGRADED` while one is
//! down), the readiness endpoint and the metrics. Each change is logged once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::kafka::Producer;
use super::shared::Shared;
use retry::sleep_or_cancelled;

/// Time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long the cluster may take to answer a probe.
pub const KAFKA_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The last probe's answers (all down until the first probe).
#[derive(Debug, Default)]
pub struct Dependencies {
    kafka: AtomicBool,
    redis: AtomicBool,
    topics: AtomicBool,
    /// Whether this process keeps the fleet's camera catalog, and whether it has read it.
    catalog_expected: AtomicBool,
    catalog: AtomicBool,
}

impl Dependencies {
    /// Whether the Kafka cluster answered the last probe.
    pub fn kafka_up(&self) -> bool {
        self.kafka.load(Ordering::Relaxed)
    }

    /// Whether Redis answered the last probe.
    pub fn redis_up(&self) -> bool {
        self.redis.load(Ordering::Relaxed)
    }

    /// Whether the topics have been created (or found).
    pub fn topics_ready(&self) -> bool {
        self.topics.load(Ordering::Relaxed)
    }

    /// Records that the topics are ready.
    pub fn set_topics_ready(&self) {
        self.topics.store(true, Ordering::Relaxed);
    }

    /// Records that this process keeps the fleet's camera catalog: it is not ready before it
    /// has read it (a client could not subscribe to the fleet's cameras).
    pub fn expect_catalog(&self) {
        self.catalog_expected.store(true, Ordering::Relaxed);
    }

    /// Records that the camera catalog has been read up to where it ended at start.
    pub fn set_catalog_ready(&self) {
        if !self.catalog.swap(true, Ordering::Relaxed) {
            tracing::info!("camera catalog read");
        }
    }

    /// Why this process cannot do its streaming work now (empty when it can).
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if !self.kafka_up() {
            why.push("kafka DOWN");
        }
        if !self.redis_up() {
            why.push("redis DOWN");
        }
        if !self.topics_ready() {
            why.push("topics not ready");
        }
        if self.catalog_expected.load(Ordering::Relaxed) && !self.catalog.load(Ordering::Relaxed) {
            why.push("camera catalog not read yet");
        }
        why
    }
}

/// Stores `up` in `flag`, logging a change.
fn record(flag: &AtomicBool, up: bool, name: &str) {
    let was = flag.swap(up, Ordering::Relaxed);
    match (was, up) {
        (false, true) => tracing::info!(dependency = name, "dependency UP"),
        (true, false) => tracing::warn!(dependency = name, "dependency DOWN"),
        _ => {}
    }
}

/// Probes the cluster (asking for `topic`'s metadata) and Redis until `shutdown`.
pub async fn probe(
    deps: Arc<Dependencies>,
    producer: Producer,
    shared: Shared,
    topic: String,
    shutdown: CancellationToken,
) {
    loop {
        let kafka = producer.ping(&topic, KAFKA_PROBE_TIMEOUT).await;
        record(&deps.kafka, kafka, "kafka");
        let redis = shared.ping().await;
        record(&deps.redis, redis, "redis");
        if !sleep_or_cancelled(PROBE_INTERVAL, &shutdown).await {
            return;
        }
    }
}
