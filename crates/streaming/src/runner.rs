//! The consume loop every streaming role shares: read a topic in a consumer group, hand each
//! message to the role's [`Handler`] (up to `concurrency` at once), produce what it returns,
//! and only then mark the message handled (Redis) and commit its offset: at-least-once end to
//! end, with duplicates dropped by `messageId`. A message that fails `max_attempts` times, or that
//! cannot be read at all, goes to the dead-letter topic instead of blocking its partition; while
//! Redis or the broker is down, messages wait instead (an outage is not the message's fault).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use retry::{Backoff, sleep_or_cancelled};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::kafka::{BrokerError, GroupConsumer, Producer};
use super::messages::MAX_MESSAGE_BYTES;
use super::offsets::OffsetTracker;
use super::shared::{Claim, Shared};
use crate::settings::Connection;

/// First wait for a service that is down; doubled up to 10 s.
const OUTAGE_FIRST_PAUSE: Duration = Duration::from_millis(500);

/// How long a member with no partitions waits before it leaves and joins again, where that is
/// asked for (`rejoin_idle_seconds` in `kafka.yaml`, for Tansu).
pub const REJOIN_AFTER: Duration = Duration::from_secs(30);

/// A message a handler wants sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key (the camera id).
    pub key: String,
    /// JSON payload.
    pub payload: Vec<u8>,
}

/// Why a message was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// It will never work (malformed): dead-letter it at once.
    #[error("{0}")]
    Permanent(String),
    /// It may work later: try again, up to the attempt limit.
    #[error("{0}")]
    Transient(String),
    /// A service it needs (Redis, the broker) is down: wait and try again, without counting
    /// an attempt, so an outage dead-letters nothing.
    #[error("{0}")]
    Unavailable(String),
}

/// What a handler's future gives.
pub type HandleFuture = Pin<Box<dyn Future<Output = Result<Vec<Outgoing>, HandleError>> + Send>>;

/// A role's work on one message.
pub trait Handler: Send + Sync + 'static {
    /// Handles one payload, returning the messages to send.
    fn handle(&self, payload: Arc<[u8]>) -> HandleFuture;
}

/// Counters of one consume loop.
#[derive(Debug, Default)]
pub struct RunnerStats {
    /// Messages received.
    pub received: AtomicU64,
    /// Messages handled and their output sent.
    pub handled: AtomicU64,
    /// Redelivered messages dropped.
    pub duplicates: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
}

/// How one loop runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Role name, for logs.
    pub role: &'static str,
    /// Consumer group.
    pub group: String,
    /// Topics read.
    pub topics: Vec<String>,
    /// Dead-letter topic.
    pub dead_letter: String,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Messages handled at once.
    pub concurrency: usize,
    /// A member with no partitions for this long leaves and joins again with a new member id
    /// (Tansu can leave a new member unassigned after its group emptied); `None`: never (a
    /// real Kafka cluster, where members beyond the partition count are simply idle).
    pub rejoin_idle: Option<Duration>,
}

/// Everything a loop needs.
#[derive(Clone)]
pub struct RunnerParts {
    /// The cluster.
    pub connection: Connection,
    /// Shared producer.
    pub producer: Producer,
    /// Shared state (duplicates).
    pub shared: Shared,
    /// Counters.
    pub stats: Arc<RunnerStats>,
}

/// The `messageId` of a JSON payload.
pub fn message_id(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Id {
        message_id: String,
    }
    serde_json::from_slice::<Id>(payload)
        .ok()
        .map(|i| i.message_id)
        .filter(|i| !i.is_empty())
}

/// The dead-letter message for `msg`.
fn dead_letter_payload(cfg: &RunnerConfig, msg: &OwnedMessage, reason: &str) -> Vec<u8> {
    let payload = String::from_utf8_lossy(msg.payload().unwrap_or_default());
    let keep = payload
        .char_indices()
        .take_while(|(i, _)| *i < MAX_MESSAGE_BYTES - 10_000)
        .map(|(_, c)| c)
        .collect::<String>();
    json!({
        "messageId": format!("dead:{}:{}:{}", msg.topic(), msg.partition(), msg.offset()),
        "role": cfg.role,
        "sourceTopic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "reason": reason,
        "truncated": keep.len() < payload.len(),
        "payload": keep,
    })
    .to_string()
    .into_bytes()
}

async fn send_all(parts: &RunnerParts, out: &[Outgoing]) -> Result<(), BrokerError> {
    for o in out {
        parts.producer.send(&o.topic, &o.key, &o.payload).await?;
        parts.stats.sent.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Handles one message to the end: done, duplicate or dead-lettered. Returns false only when
/// shutting down before the message could be settled (it is then not committed).
async fn settle(
    cfg: &RunnerConfig,
    parts: &RunnerParts,
    handler: &dyn Handler,
    msg: &OwnedMessage,
    shutdown: &CancellationToken,
) -> bool {
    let payload: Arc<[u8]> = Arc::from(msg.payload().unwrap_or_default());
    let id = message_id(&payload);
    let reason = match &id {
        None => "not a JSON message with a messageId".to_string(),
        Some(id) => {
            match claim(cfg, parts, id, shutdown).await {
                Claimed::Mine => {}
                Claimed::Duplicate => return true,
                Claimed::ShuttingDown => return false,
            }
            match handle(cfg, parts, handler, &payload, shutdown).await {
                Handled::Done => {
                    if let Err(e) = parts.shared.mark_done(&cfg.group, id).await {
                        tracing::warn!(role = cfg.role, error = %e, "cannot record a handled message");
                    }
                    parts.stats.handled.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Handled::Failed(reason) => reason,
                Handled::ShuttingDown => {
                    let _ = parts.shared.release(&cfg.group, id).await;
                    return false;
                }
            }
        }
    };
    dead_letter(cfg, parts, msg, id.as_deref(), &reason, shutdown).await
}

/// Whose a message is.
enum Claimed {
    /// This consumer handles it.
    Mine,
    /// Handled already (counted as a duplicate).
    Duplicate,
    /// Shutdown came first.
    ShuttingDown,
}

/// Claims message `id` in Redis; a duplicate being handled elsewhere is waited for (until it
/// ends or its claim lapses). Without Redis the message is handled anyway: a duplicate beats a
/// loss.
async fn claim(
    cfg: &RunnerConfig,
    parts: &RunnerParts,
    id: &str,
    shutdown: &CancellationToken,
) -> Claimed {
    loop {
        match parts.shared.claim(&cfg.group, id).await {
            Ok(Claim::Taken) => return Claimed::Mine,
            Ok(Claim::Done) => {
                parts.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Claimed::Duplicate;
            }
            Ok(Claim::Busy) => {
                if !sleep_or_cancelled(Duration::from_millis(250), shutdown).await {
                    return Claimed::ShuttingDown;
                }
            }
            Err(e) => {
                tracing::warn!(role = cfg.role, error = %e, "cannot check for duplicates");
                return Claimed::Mine;
            }
        }
    }
}

/// What became of a claimed message.
enum Handled {
    /// Handled and its output sent.
    Done,
    /// Refused for good, or failed `max_attempts` times: the last reason.
    Failed(String),
    /// Shutdown came first.
    ShuttingDown,
}

/// Runs the handler and sends its output, retrying transient failures up to `max_attempts`
/// (400 ms doubling to 12.8 s) and waiting out outages of a service it needs however long
/// they last (500 ms doubling to 10 s).
async fn handle(
    cfg: &RunnerConfig,
    parts: &RunnerParts,
    handler: &dyn Handler,
    payload: &Arc<[u8]>,
    shutdown: &CancellationToken,
) -> Handled {
    let mut last = String::new();
    let mut attempt = 0;
    let mut transient = Backoff::new(Duration::from_millis(400), Duration::from_millis(12_800));
    let mut outage = Backoff::new(OUTAGE_FIRST_PAUSE, Duration::from_secs(10));
    let mut waiting = false;
    while attempt < cfg.max_attempts {
        let result = match handler.handle(Arc::clone(payload)).await {
            Ok(out) => send_all(parts, &out)
                .await
                .map_err(|e| HandleError::Unavailable(e.to_string())),
            Err(e) => Err(e),
        };
        let pause = match result {
            Ok(()) => return Handled::Done,
            Err(HandleError::Permanent(why)) => return Handled::Failed(why),
            Err(HandleError::Transient(why)) => {
                attempt += 1;
                last = why;
                if attempt >= cfg.max_attempts {
                    break;
                }
                parts.stats.retries.fetch_add(1, Ordering::Relaxed);
                transient.next_delay()
            }
            Err(HandleError::Unavailable(why)) => {
                // Not the message's fault: wait for the service, however long.
                parts.stats.retries.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut waiting, true) {
                    tracing::warn!(role = cfg.role, reason = %why, "waiting for a service");
                }
                outage.next_delay()
            }
        };
        if !sleep_or_cancelled(pause, shutdown).await {
            return Handled::ShuttingDown;
        }
    }
    Handled::Failed(last)
}

/// Sends a message that cannot be handled to the dead-letter topic, retrying while the broker
/// refuses, and records it as handled; false when shutdown came first.
async fn dead_letter(
    cfg: &RunnerConfig,
    parts: &RunnerParts,
    msg: &OwnedMessage,
    id: Option<&str>,
    reason: &str,
    shutdown: &CancellationToken,
) -> bool {
    tracing::warn!(
        role = cfg.role,
        topic = msg.topic(),
        partition = msg.partition(),
        offset = msg.offset(),
        reason = %reason,
        "message dead-lettered"
    );
    let dead = dead_letter_payload(cfg, msg, reason);
    let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).to_string();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match parts.producer.send(&cfg.dead_letter, &key, &dead).await {
            Ok(_) => {
                parts.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = id
                    && let Err(e) = parts.shared.mark_done(&cfg.group, id).await
                {
                    tracing::warn!(role = cfg.role, error = %e, "cannot record a handled message");
                }
                return true;
            }
            Err(e) => {
                tracing::error!(role = cfg.role, error = %e, "cannot dead-letter; retrying");
                if !sleep_or_cancelled(backoff.next_delay(), shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// Runs one consume loop until `shutdown`.
pub async fn run(
    cfg: RunnerConfig,
    parts: RunnerParts,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    let consumer = GroupConsumer::with_metrics(
        &parts.connection,
        &cfg.group,
        &topics,
        parts.producer.metrics(),
    )?;
    tracing::info!(role = cfg.role, group = %cfg.group, topics = ?cfg.topics, "consuming");
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, i32, i64, bool)>();
    let mut tracker = OffsetTracker::new();
    let cfg = Arc::new(cfg);
    let mut check = tokio::time::interval(Duration::from_secs(5));
    let mut last_activity = std::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = check.tick() => {
                // Some brokers (Tansu) can leave a member without partitions after a group
                // emptied; a new member id gets an assignment. Where asked for, an idle member
                // rejoins (run at most as many members as partitions then).
                let assigned = consumer.inner.assignment().map_or(0, |a| a.count());
                if let Some(after) = cfg.rejoin_idle
                    && assigned == 0
                    && tracker.in_flight() == 0
                    && last_activity.elapsed() > after
                {
                    return Err(BrokerError {
                        what: format!("{}: no partitions assigned", cfg.role),
                        source: rdkafka::error::KafkaError::Subscription(format!(
                            "nothing assigned for {} s; rejoining with a new member id",
                            after.as_secs()
                        )),
                    });
                }
                if assigned > 0 {
                    last_activity = std::time::Instant::now();
                }
            }
            Some((topic, partition, offset, settled)) = done_rx.recv() => {
                if !settled {
                    continue;
                }
                if let Some(position) = tracker.finish(&topic, partition, offset)
                    && let Err(e) = consumer.commit(&topic, partition, position)
                {
                    tracing::warn!(role = cfg.role, error = %e, "commit failed");
                }
            }
            next = async {
                let permit = Arc::clone(&slots).acquire_owned().await;
                (permit, consumer.recv().await)
            } => {
                let (permit, received) = next;
                let msg = match received {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        tracing::warn!(role = cfg.role, error = %e, "receive failed");
                        sleep_or_cancelled(Duration::from_millis(500), &shutdown).await;
                        continue;
                    }
                };
                parts.stats.received.fetch_add(1, Ordering::Relaxed);
                tracker.start(msg.topic(), msg.partition(), msg.offset());
                let (cfg, parts, handler, done, stop) = (
                    Arc::clone(&cfg),
                    parts.clone(),
                    Arc::clone(&handler),
                    done_tx.clone(),
                    shutdown.clone(),
                );
                tokio::spawn(async move {
                    let _permit = permit;
                    let settled = settle(&cfg, &parts, handler.as_ref(), &msg, &stop).await;
                    let _ = done.send((msg.topic().to_string(), msg.partition(), msg.offset(), settled));
                });
            }
        }
    }
    // Let settled work commit before leaving.
    drop(done_tx);
    while let Ok(Some((topic, partition, offset, settled))) =
        tokio::time::timeout(Duration::from_secs(2), done_rx.recv()).await
    {
        if settled && let Some(position) = tracker.finish(&topic, partition, offset) {
            let _ = consumer.commit(&topic, partition, position);
        }
    }
    Ok(())
}
