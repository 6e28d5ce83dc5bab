//! The state streaming processes share, in Redis (`redis.url`): which messages each consumer
//! group has taken or handled (so a redelivered or duplicated message is handled once) and, with the aggregator, the
//! aggregations in progress. Every call has a timeout and a failed call drops the connection, so
//! a Redis outage slows nothing down for long, is reported, not hidden, and ends by itself.

use std::time::Duration;

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};

/// How long a handled message id is remembered (longer than any redelivery).
pub const SEEN_TTL: Duration = Duration::from_secs(3600);
/// How long a claim on a message in progress holds if its holder dies.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);
/// Timeout of one Redis call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Handle it.
    Taken,
    /// Handled already: drop it.
    Done,
    /// Someone is handling it now.
    Busy,
}

/// Milliseconds since the Unix epoch (instances' clocks are kept in step by NTP; the watcher
/// entries it stamps last seconds, far beyond any skew).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Redis error with what we were doing.
#[derive(Debug, thiserror::Error)]
#[error("redis {what}: {source}")]
pub struct SharedError {
    /// What failed.
    pub what: &'static str,
    /// The client's error.
    #[source]
    pub source: redis::RedisError,
}

/// The shared state. The connection is made on first use and dropped after any failure, so the
/// next call connects afresh: a restarted Redis is picked up within a call's timeout.
#[derive(Clone)]
pub struct Shared {
    client: redis::Client,
    conn: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
    /// Key prefix.
    pub prefix: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn wrap(what: &'static str) -> impl FnOnce(redis::RedisError) -> SharedError {
    move |source| SharedError { what, source }
}

impl Shared {
    /// Connects to `url`; keys start with `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, SharedError> {
        let client = redis::Client::open(url).map_err(wrap("URL"))?;
        let shared = Self {
            client,
            conn: Arc::default(),
            prefix: prefix.to_string(),
        };
        shared.conn().await?;
        Ok(shared)
    }

    /// The connection, made now if there is none.
    pub async fn conn(&self) -> Result<MultiplexedConnection, SharedError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(wrap("connect"))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection after a failure; the next call reconnects.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs `op` on the connection, resetting it when `op` fails.
    pub async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let c = self.conn().await?;
        let result = match tokio::time::timeout(CALL_TIMEOUT * 2, op(c)).await {
            Ok(r) => r.map_err(wrap(what)),
            Err(_) => Err(SharedError {
                what,
                source: redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer in time",
                )),
            }),
        };
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    /// Whether Redis answers `PING`.
    pub async fn ping(&self) -> bool {
        self.call("PING", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .is_ok()
    }

    /// The full key of `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Tries to take `message_id` for `group`: `Claim::Taken` when this caller should handle
    /// it, `Claim::Done` when it was handled already, `Claim::Busy` while another consumer of
    /// the group is handling it (its claim lapses after `CLAIM_TTL` if it dies).
    pub async fn claim(&self, group: &str, message_id: &str) -> Result<Claim, SharedError> {
        let key = self.key(&format!("seen:{group}:{message_id}"));
        let taken: Option<String> = self
            .call("SET NX", |mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg("processing")
                        .arg("NX")
                        .arg("EX")
                        .arg(CLAIM_TTL.as_secs())
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        if taken.is_some() {
            return Ok(Claim::Taken);
        }
        let state: Option<String> = self
            .call("GET", |mut c| async move { c.get(&key).await })
            .await?;
        Ok(match state.as_deref() {
            Some("done") => Claim::Done,
            _ => Claim::Busy, // in progress, or lapsed just now: ask again
        })
    }

    /// Records that `group` handled `message_id`.
    pub async fn mark_done(&self, group: &str, message_id: &str) -> Result<(), SharedError> {
        let key = self.key(&format!("seen:{group}:{message_id}"));
        self.call("SET", |mut c| async move {
            c.set_ex(&key, "done", SEEN_TTL.as_secs()).await
        })
        .await
    }

    /// Takes lease `name` for `holder` for `ttl`, or renews it when `holder` has it already;
    /// false while someone else holds it (it lapses `ttl` after its holder last renewed it).
    pub async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, SharedError> {
        const SCRIPT: &str = "local h = redis.call('GET', KEYS[1]) \
            if h == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
            if h then return 0 end \
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";
        let key = self.key(&format!("lease:{name}"));
        let held: i64 = self
            .call("lease", |mut c| async move {
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(1)
                    .arg(&key)
                    .arg(holder)
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(held == 1)
    }

    /// Gives lease `name` up if `holder` holds it.
    pub async fn drop_lease(&self, name: &str, holder: &str) -> Result<(), SharedError> {
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            redis.call('DEL', KEYS[1]) end return 0";
        let key = self.key(&format!("lease:{name}"));
        self.call("lease release", |mut c| async move {
            redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(&key)
                .arg(holder)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Says that `instance` has watchers of camera `camera`, for `ttl` (renewed while they
    /// watch).
    pub async fn watch(
        &self,
        camera: i64,
        instance: &str,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let key = self.key(&format!("watchers:{camera}"));
        let until = now_ms() + ttl.as_millis() as u64;
        self.call("ZADD", |mut c| async move {
            redis::pipe()
                .cmd("ZADD")
                .arg(&key)
                .arg(until)
                .arg(instance)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now_ms())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl.as_millis() as u64)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Says that `instance` no longer has watchers of camera `camera`.
    pub async fn unwatch(&self, camera: i64, instance: &str) -> Result<(), SharedError> {
        let key = self.key(&format!("watchers:{camera}"));
        self.call("ZREM", |mut c| async move {
            c.zrem::<_, _, ()>(&key, instance).await
        })
        .await
    }

    /// The instances other than `except` with watchers of camera `camera` now.
    pub async fn watchers(&self, camera: i64, except: &str) -> Result<usize, SharedError> {
        let key = self.key(&format!("watchers:{camera}"));
        let live: Vec<String> = self
            .call("ZRANGEBYSCORE", |mut c| async move {
                c.zrangebyscore(&key, now_ms(), "+inf").await
            })
            .await?;
        Ok(live.iter().filter(|i| *i != except).count())
    }

    /// Gives a claim back unhandled (shutting down).
    pub async fn release(&self, group: &str, message_id: &str) -> Result<(), SharedError> {
        let key = self.key(&format!("seen:{group}:{message_id}"));
        self.call("DEL", |mut c| async move { c.del(&key).await })
            .await
    }
}
