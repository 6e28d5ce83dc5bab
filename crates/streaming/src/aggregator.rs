//! The aggregator role: collects, in Redis, each detection's record and the LLM answers to its
//! tasks (from `detection-results` and `risk-assessment-results`, in whatever order they come),
//! and publishes the merged result to `merged-results` once every answer is in: the publisher
//! takes a lease (a Redis key set only if absent, expiring by itself), sends, and only then marks
//! the detection published, so a publisher that dies in the middle leaves a lease that runs out
//! and the sweeper publishes instead; nothing is marked published before it was. Any number of
//! aggregators share the work and a restarted one carries on, because the state is in Redis: a
//! hash per detection and a sorted set of deadlines (from the first message of a detection,
//! record or answer). The sweeper publishes what is still
//! incomplete after `aggregation_timeout` as partial and deletes its state; a detection's
//! complete and partial results share one `messageId`, so the instance shows whichever comes
//! first. The latest merged result per camera and the last 100 high alerts are kept too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::kafka::Producer;
use super::merge::merge;
use super::messages::{
    AssessmentOutcome, DetectionRecord, MergedResult, decode, encode, tasks_for,
};
use super::runner::{HandleError, HandleFuture, Handler, Outgoing};
use super::shared::Shared;
use llm::prompt::MAX_GROUPS;
use retry::sleep_or_cancelled;

/// How long the latest result of a camera is kept.
pub const LATEST_TTL: Duration = Duration::from_secs(3600);
/// High alerts kept.
pub const HIGH_ALERTS_KEPT: isize = 100;

/// Aggregation counters.
#[derive(Debug, Default)]
pub struct AggregatorStats {
    /// Merged results published complete.
    pub complete: AtomicU64,
    /// Published partial after the timeout.
    pub partial: AtomicU64,
    /// Answers whose detection never came, dropped after the timeout.
    pub orphaned: AtomicU64,
}

/// The aggregator's work on one message.
#[derive(Debug, Clone)]
pub struct AggregatorHandler {
    /// Shared state.
    pub shared: Shared,
    /// Where merged results go.
    pub merged_topic: String,
    /// Sends them (the handler publishes itself, so exactly one of several aggregators that
    /// see a detection complete does).
    pub producer: Producer,
    /// How long a detection waits for its answers.
    pub timeout: Duration,
    /// Counters.
    pub stats: Arc<AggregatorStats>,
}

/// Who may publish a detection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    /// This caller: it must publish, mark, and release.
    Taken,
    /// Another publisher holds the lease (or died holding it: it expires).
    Busy,
    /// Published already.
    Done,
}

/// Redis failed: wait for it (the message is fine).
fn unavailable(e: impl std::fmt::Display) -> HandleError {
    HandleError::Unavailable(e.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A detection's state as stored.
struct Stored {
    record: Option<DetectionRecord>,
    expected: usize,
    outcomes: Vec<AssessmentOutcome>,
}

impl AggregatorHandler {
    fn state_key(&self, detection: &str) -> String {
        self.shared.key(&format!("agg:{detection}"))
    }

    fn deadlines_key(&self) -> String {
        self.shared.key("agg:deadlines")
    }

    fn lease_key(&self, detection: &str) -> String {
        self.shared.key(&format!("agg:{detection}:publishing"))
    }

    /// How long a publish lease lasts: longer than a send takes, so two publishers rarely both
    /// send (and if they do, the two share one `messageId`).
    fn lease(&self) -> Duration {
        self.timeout.max(Duration::from_secs(5))
    }

    /// Takes the lease on publishing `detection`, unless another holds it or it is published.
    async fn take_lease(
        &self,
        c: &mut MultiplexedConnection,
        detection: &str,
    ) -> Result<Lease, redis::RedisError> {
        let lease = self.lease_key(detection);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lease)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(self.lease().as_millis() as u64)
            .query_async(c)
            .await?;
        if taken.is_none() {
            return Ok(Lease::Busy);
        }
        let done: bool = c.hexists(self.state_key(detection), "published").await?;
        if done {
            let _: () = c.del(&lease).await?;
            return Ok(Lease::Done);
        }
        Ok(Lease::Taken)
    }

    /// Keeps state a little longer than the timeout, in case the sweeper is down.
    fn state_ttl(&self) -> i64 {
        (self.timeout.as_secs() as i64) * 3 + 60
    }

    async fn load(
        &self,
        c: &mut MultiplexedConnection,
        detection: &str,
    ) -> Result<Stored, redis::RedisError> {
        let fields: HashMap<String, String> = c.hgetall(self.state_key(detection)).await?;
        let record = fields.get("record").and_then(|r| decode(r.as_bytes()).ok());
        let expected = fields
            .get("expected")
            .and_then(|e| e.parse().ok())
            .unwrap_or(usize::MAX);
        let mut outcomes: Vec<AssessmentOutcome> = fields
            .iter()
            .filter(|(k, _)| k.starts_with("r:"))
            .filter_map(|(_, v)| decode(v.as_bytes()).ok())
            .collect();
        outcomes.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(Stored {
            record,
            expected,
            outcomes,
        })
    }

    async fn handle_payload(self, payload: Arc<[u8]>) -> Result<Vec<Outgoing>, HandleError> {
        let result = self.handle_inner(payload).await;
        if matches!(result, Err(HandleError::Unavailable(_))) {
            self.shared.reset().await;
        }
        result
    }

    async fn handle_inner(&self, payload: Arc<[u8]>) -> Result<Vec<Outgoing>, HandleError> {
        let probe: serde_json::Value = serde_json::from_slice(&payload)
            .map_err(|e| HandleError::Permanent(format!("not JSON: {e}")))?;
        let mut c = self.shared.conn().await.map_err(unavailable)?;
        let text = String::from_utf8_lossy(&payload).to_string();
        // What to store: an answer under `r:{taskId}`, a record with its expected count.
        let (detection, fields) = if probe.get("taskId").is_some() {
            let outcome: AssessmentOutcome =
                decode(&payload).map_err(|e| HandleError::Permanent(e.to_string()))?;
            let field = format!("r:{}", outcome.task_id);
            (outcome.detection_id, vec![(field, text)])
        } else {
            let record: DetectionRecord =
                decode(&payload).map_err(|e| HandleError::Permanent(e.to_string()))?;
            let expected = tasks_for(&record, MAX_GROUPS).len();
            if expected == 0 {
                return Ok(Vec::new());
            }
            let fields = vec![
                ("record".to_string(), text),
                ("expected".to_string(), expected.to_string()),
            ];
            (record.detection_id, fields)
        };
        // The deadline counts from a detection's first message, record or answer.
        let key = self.state_key(&detection);
        let deadline = now_ms() + self.timeout.as_millis() as i64;
        let _: () = redis::pipe()
            .hset_multiple(&key, &fields)
            .expire(&key, self.state_ttl())
            .cmd("ZADD")
            .arg(self.deadlines_key())
            .arg("NX")
            .arg(deadline)
            .arg(&detection)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let stored = self.load(&mut c, &detection).await.map_err(unavailable)?;
        let Some(record) = &stored.record else {
            return Ok(Vec::new()); // answers before their detection: wait for it
        };
        if stored.outcomes.len() < stored.expected {
            return Ok(Vec::new());
        }
        // Exactly one of the handlers that see it complete publishes it.
        if self
            .take_lease(&mut c, &detection)
            .await
            .map_err(unavailable)?
            != Lease::Taken
        {
            return Ok(Vec::new());
        }
        let state = self.state_key(&detection);
        let lease = self.lease_key(&detection);
        let merged = merged_message(record, &stored.outcomes, stored.expected);
        let sent = match encode(&merged) {
            Ok(bytes) => self
                .producer
                .send(&self.merged_topic, &record.camera_id.to_string(), &bytes)
                .await
                .map_err(|e| HandleError::Unavailable(e.to_string())),
            Err(e) => Err(HandleError::Permanent(e.to_string())),
        };
        if let Err(e) = sent {
            // Give the lease back so the retry (or the sweeper) publishes it.
            let _: Result<(), _> = c.del(&lease).await;
            return Err(e);
        }
        // Sent: now it is published.
        let _: () = redis::pipe()
            .hset(&state, "published", 1)
            .zrem(self.deadlines_key(), &detection)
            .expire(&state, 60)
            .del(&lease)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        remember(&self.shared, &merged).await.map_err(unavailable)?;
        self.stats.complete.fetch_add(1, Ordering::Relaxed);
        Ok(Vec::new())
    }

    /// Publishes what is past its deadline as partial and deletes its state, until
    /// `shutdown`. Several sweepers may run: each detection is claimed by removing it from the
    /// deadline set, which only one of them can do.
    pub async fn sweep(self, producer: Producer, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            if !sleep_or_cancelled(Duration::from_millis(250), &shutdown).await {
                return;
            }
            match self.sweep_once(&producer).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("aggregation sweeps work again");
                }
                Ok(()) => {}
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "aggregation sweep failed; retrying quietly");
                    }
                    failing = true;
                    self.shared.reset().await;
                }
            }
        }
    }

    async fn sweep_once(&self, producer: &Producer) -> anyhow::Result<()> {
        let mut c = self.shared.conn().await?;
        let due: Vec<String> = c
            .zrangebyscore_limit(self.deadlines_key(), "-inf", now_ms(), 0, 100)
            .await?;
        for detection in due {
            let claimed: i64 = c.zrem(self.deadlines_key(), &detection).await?;
            if claimed == 0 {
                continue;
            }
            match self.take_lease(&mut c, &detection).await? {
                Lease::Taken => {}
                Lease::Done => continue, // published complete just now
                Lease::Busy => {
                    // Being published, or its publisher died: look again when the lease ends.
                    let _: () = c
                        .zadd(self.deadlines_key(), &detection, now_ms() + 1000)
                        .await?;
                    continue;
                }
            }
            let lease = self.lease_key(&detection);
            let stored = self.load(&mut c, &detection).await?;
            let Some(record) = &stored.record else {
                self.stats.orphaned.fetch_add(1, Ordering::Relaxed);
                let _: () = c.del(&[self.state_key(&detection), lease]).await?;
                continue;
            };
            let merged = merged_message(record, &stored.outcomes, stored.expected);
            let sent = match encode(&merged) {
                Ok(bytes) => producer
                    .send(&self.merged_topic, &record.camera_id.to_string(), &bytes)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = sent {
                // Try again shortly.
                let _: () = redis::pipe()
                    .del(&lease)
                    .zadd(self.deadlines_key(), &detection, now_ms() + 1000)
                    .query_async(&mut c)
                    .await?;
                return Err(e);
            }
            remember(&self.shared, &merged).await?;
            let _: () = c.del(&[self.state_key(&detection), lease]).await?;
            self.stats.partial.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(detection = %detection, answers = stored.outcomes.len(), "published partial");
        }
        Ok(())
    }
}

impl Handler for AggregatorHandler {
    fn handle(&self, payload: Arc<[u8]>) -> HandleFuture {
        Box::pin(self.clone().handle_payload(payload))
    }
}

fn merged_message(
    record: &DetectionRecord,
    outcomes: &[AssessmentOutcome],
    expected: usize,
) -> MergedResult {
    let data = merge(record, outcomes, expected);
    MergedResult {
        message_id: format!("merged:{}", record.detection_id),
        detection_id: record.detection_id.clone(),
        camera_id: record.camera_id,
        instance_id: record.instance_id.clone(),
        partial: data.partial.unwrap_or(true),
        data,
    }
}

/// Keeps the latest merged result of the camera and, when it is high, the alert list.
async fn remember(shared: &Shared, merged: &MergedResult) -> anyhow::Result<()> {
    let mut c = shared.conn().await?;
    let text = serde_json::to_string(merged).unwrap_or_default();
    let mut pipe = redis::pipe();
    pipe.set_ex(
        shared.key(&format!("latest:{}", merged.camera_id)),
        &text,
        LATEST_TTL.as_secs(),
    );
    if merged.data.max_risk_level == protocol::RiskLevel::High {
        let alerts = shared.key("alerts:high");
        pipe.lpush(&alerts, &text)
            .ltrim(&alerts, 0, HIGH_ALERTS_KEPT - 1)
            .expire(&alerts, 86_400);
    }
    let () = pipe.query_async(&mut c).await?;
    Ok(())
}
