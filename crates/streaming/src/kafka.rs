//! The broker client of streaming mode, over librdkafka (`rdkafka`, built from source): topics
//! created at start-up when missing (with the file's replication factor and
//! `min.insync.replicas`), or only checked, a producer whose sends complete only once the
//! broker has the message (so offsets are committed after the output exists), and consumers in
//! consumer groups with manual commits; every client takes the file's librdkafka properties
//! last, so they can change any default here. Messages are keyed by camera id so one camera's
//! messages stay in order on one partition.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::counters::{KafkaMetrics, LagLabel};
use crate::settings::{Connection, Properties, TopicSpec};

/// How long a send may wait in the producer's queue for the broker.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker error, with what we were doing.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct BrokerError {
    /// What failed.
    pub what: String,
    /// The client's error.
    #[source]
    pub source: KafkaError,
}

fn err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> BrokerError {
    let what = what.into();
    move |source| BrokerError { what, source }
}

/// The settings every client starts from: `conn`'s brokers and common properties.
fn client_config(conn: &Connection) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &conn.bootstrap)
        .set("client.id", "traffic-algo")
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    apply(&mut c, &conn.common);
    c
}

/// Sets `props` on `c`, over what is there.
fn apply(c: &mut ClientConfig, props: &Properties) {
    for (k, v) in props {
        c.set(k, v);
    }
}

/// How topics are created: replicas and `min.insync.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Replicas per partition.
    pub replication_factor: i32,
    /// `min.insync.replicas` (absent: the broker's default).
    pub min_insync_replicas: Option<i32>,
}

impl Default for Durability {
    /// One replica: a single test broker.
    fn default() -> Self {
        Self {
            replication_factor: 1,
            min_insync_replicas: None,
        }
    }
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
/// Returns the names it created.
pub async fn ensure_topics(
    conn: &Connection,
    topics: &[&TopicSpec],
    durability: Durability,
) -> Result<Vec<String>, BrokerError> {
    let admin: AdminClient<DefaultClientContext> = client_config(conn)
        .create()
        .map_err(err("cannot create the Kafka admin client"))?;
    let retention: Vec<String> = topics.iter().map(|t| t.retention_ms.to_string()).collect();
    let min_isr = durability.min_insync_replicas.map(|n| n.to_string());
    let replicas = durability.replication_factor;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retention)
        .map(|(t, r)| {
            let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replicas));
            let topic = if t.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic.set("retention.ms", r)
            };
            match &min_isr {
                Some(n) => topic.set("min.insync.replicas", n),
                None => topic,
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(err("cannot create topics"))?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BrokerError {
                    what: format!("cannot create topic {name}"),
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(created)
}

/// Checks that `topics` exist (when they are not to be created); the error names the missing.
pub async fn check_topics(conn: &Connection, topics: &[&TopicSpec]) -> Result<(), BrokerError> {
    use rdkafka::consumer::BaseConsumer;
    let conn = conn.clone();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    // Metadata calls block: off the async threads.
    let found = tokio::task::spawn_blocking(move || -> Result<Vec<String>, BrokerError> {
        let client: BaseConsumer = client_config(&conn)
            .create()
            .map_err(err("cannot create the Kafka metadata client"))?;
        let meta = client
            .fetch_metadata(None, Duration::from_secs(15))
            .map_err(err("cannot read the cluster's topics"))?;
        Ok(meta
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.name().to_string())
            .collect())
    })
    .await
    .map_err(|_| BrokerError {
        what: "the topic check stopped".into(),
        source: KafkaError::Canceled,
    })??;
    let missing: Vec<&String> = names.iter().filter(|n| !found.contains(n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(BrokerError {
        what: format!(
            "topics missing and kafka.yaml says create_topics: false: {} (create them, or let \
             the service create them)",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        source: KafkaError::AdminOp(RDKafkaErrorCode::UnknownTopicOrPartition),
    })
}

/// Sends messages and waits for the broker to have them.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    metrics: Arc<KafkaMetrics>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for `conn`: acks from all in-sync replicas; not idempotent unless the
    /// connection's producer properties say `enable.idempotence: true` (Tansu, the test broker,
    /// lacks producer ids), consumers drop duplicates by `messageId` either way.
    pub fn new(conn: &Connection) -> Result<Self, BrokerError> {
        Self::with_metrics(conn, Arc::default())
    }

    /// [`Producer::new`], counting sends and errors in `metrics`.
    pub fn with_metrics(
        conn: &Connection,
        metrics: Arc<KafkaMetrics>,
    ) -> Result<Self, BrokerError> {
        let mut c = client_config(conn);
        c.set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "5")
            .set("message.max.bytes", "1048576")
            .set("message.timeout.ms", "30000");
        apply(&mut c, &conn.common);
        apply(&mut c, &conn.producer);
        let inner = c
            .create()
            .map_err(err("cannot create the Kafka producer"))?;
        Ok(Self { inner, metrics })
    }

    /// Whether the cluster answers a metadata request for `topic` within `timeout` (one broker
    /// is enough).
    pub async fn ping(&self, topic: &str, timeout: Duration) -> bool {
        let inner = self.inner.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            inner.client().fetch_metadata(Some(&topic), timeout).is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Where this producer counts its sends (consumers of the same process count there too).
    pub fn metrics(&self) -> Arc<KafkaMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Sends `payload` to `topic` keyed by `key`; returns once the broker has it, with the
    /// partition and offset.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<(i32, i64), BrokerError> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        self.deliver(topic, record).await
    }

    /// Sends a record without payload (a tombstone: compaction deletes `key`) to `topic`.
    pub async fn send_tombstone(&self, topic: &str, key: &str) -> Result<(i32, i64), BrokerError> {
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key);
        self.deliver(topic, record).await
    }

    async fn deliver(
        &self,
        topic: &str,
        record: FutureRecord<'_, str, [u8]>,
    ) -> Result<(i32, i64), BrokerError> {
        let sent = self.inner.send(record, SEND_TIMEOUT).await;
        self.metrics.on_send(topic, sent.is_ok());
        match sent {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((source, _)) => Err(BrokerError {
                what: format!("cannot send to {topic}"),
                source,
            }),
        }
    }
}

/// The consumer of camera definitions: in `group` with every detector instance of the fleet,
/// cooperative-sticky assignment, never committing (each assignment reads its partitions from
/// the beginning: the compacted topic is the cameras' current state).
pub fn fleet_consumer<C: ConsumerContext + 'static>(
    conn: &Connection,
    group: &str,
    topic: &str,
    context: C,
) -> Result<StreamConsumer<C>, BrokerError> {
    let mut c = client_config(conn);
    c.set("group.id", group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    apply(&mut c, &conn.consumer);
    let inner: StreamConsumer<C> = c
        .create_with_context(context)
        .map_err(err("cannot create the camera definitions consumer"))?;
    inner
        .subscribe(&[topic])
        .map_err(err(format!("cannot subscribe to {topic}")))?;
    Ok(inner)
}

/// A consumer of every partition of `topic` (`partitions` of them) from `from`, in no group
/// and committing nothing: for state every instance reads whole (the camera catalog) or live
/// traffic every instance reads from the end.
pub fn reader(
    conn: &Connection,
    topic: &str,
    partitions: i32,
    from: Offset,
) -> Result<StreamConsumer, BrokerError> {
    let mut c = client_config(conn);
    // A group id librdkafka wants even for assigned partitions; nothing joins or commits.
    c.set("group.id", "traffic-algo-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    apply(&mut c, &conn.consumer);
    let inner: StreamConsumer = c
        .create()
        .map_err(err(format!("cannot create a reader of {topic}")))?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, from)
            .map_err(err("bad offset"))?;
    }
    inner
        .assign(&list)
        .map_err(err(format!("cannot read {topic}")))?;
    Ok(inner)
}

/// How many partitions `topic` has (blocking: call off the async threads).
pub fn partition_count(conn: &Connection, topic: &str) -> Result<i32, BrokerError> {
    use rdkafka::consumer::BaseConsumer;
    let client: BaseConsumer = client_config(conn)
        .create()
        .map_err(err("cannot create the Kafka metadata client"))?;
    let meta = client
        .fetch_metadata(Some(topic), Duration::from_secs(15))
        .map_err(err(format!("cannot read the partitions of {topic}")))?;
    let count = meta
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len() as i32);
    if count == 0 {
        return Err(BrokerError {
            what: format!("topic {topic} has no partitions"),
            source: KafkaError::AdminOp(RDKafkaErrorCode::UnknownTopicOrPartition),
        });
    }
    Ok(count)
}

/// Keeps `kafka_consumer_lag` from librdkafka's statistics (every [`STATS_INTERVAL_MS`]).
pub struct LagContext {
    group: String,
    metrics: Arc<KafkaMetrics>,
}

/// How often librdkafka reports statistics (the consumer lag among them).
pub const STATS_INTERVAL_MS: u32 = 5000;

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            // Partition -1 is librdkafka's internal "unassigned" queue; a lag of -1 is unknown.
            let known: Vec<i64> = t
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(|p| p.consumer_lag)
                .collect();
            if known.is_empty() {
                continue;
            }
            let label = LagLabel {
                topic: topic.clone(),
                group: self.group.clone(),
            };
            self.metrics.set_lag(label, known.iter().sum());
        }
    }
}

impl ConsumerContext for LagContext {}

/// A consumer in a consumer group, committing by hand.
pub struct GroupConsumer {
    /// The client.
    pub inner: StreamConsumer<LagContext>,
    metrics: Arc<KafkaMetrics>,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer").finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// Joins `group` reading `topics` from the earliest uncommitted message.
    pub fn new(conn: &Connection, group: &str, topics: &[&str]) -> Result<Self, BrokerError> {
        Self::with_metrics(conn, group, topics, Arc::default())
    }

    /// [`GroupConsumer::new`], counting messages and lag in `metrics`.
    pub fn with_metrics(
        conn: &Connection,
        group: &str,
        topics: &[&str],
        metrics: Arc<KafkaMetrics>,
    ) -> Result<Self, BrokerError> {
        let context = LagContext {
            group: group.to_string(),
            metrics: Arc::clone(&metrics),
        };
        let mut c = client_config(conn);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "300000")
            .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
        apply(&mut c, &conn.common);
        apply(&mut c, &conn.consumer);
        let inner: StreamConsumer<LagContext> = c
            .create_with_context(context)
            .map_err(err("cannot create the Kafka consumer"))?;
        inner
            .subscribe(topics)
            .map_err(err(format!("cannot subscribe to {}", topics.join(", "))))?;
        Ok(Self { inner, metrics })
    }

    /// The next message (counted in `kafka_messages_received_total`).
    pub async fn recv(&self) -> Result<BorrowedMessage<'_>, KafkaError> {
        let msg = self.inner.recv().await?;
        self.metrics.on_receive(msg.topic());
        Ok(msg)
    }

    /// Commits `position` (the next offset to read) of a partition.
    pub fn commit(&self, topic: &str, partition: i32, position: i64) -> Result<(), BrokerError> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(position))
            .map_err(err("bad offset"))?;
        self.inner
            .commit(&list, CommitMode::Async)
            .map_err(err(format!("cannot commit {topic}/{partition}")))
    }
}
