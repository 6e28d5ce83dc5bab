//! The state streaming processes share, in Redis (`redis.url`): which messages each consumer
//! group has taken or handled (so a redelivered or duplicated message is handled once) and, with the aggregator, the
//! aggregations in progress. One connection manager per process reconnects on its own; every
//! call has a timeout, so a Redis outage slows nothing down for long and is reported, not hidden.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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

/// The shared state.
#[derive(Clone)]
pub struct Shared {
    /// The connection (cheap to clone).
    pub conn: ConnectionManager,
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(wrap("connect"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
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
        let mut c = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg("processing")
            .arg("NX")
            .arg("EX")
            .arg(CLAIM_TTL.as_secs())
            .query_async(&mut c)
            .await
            .map_err(wrap("SET NX"))?;
        if taken.is_some() {
            return Ok(Claim::Taken);
        }
        let state: Option<String> = c.get(&key).await.map_err(wrap("GET"))?;
        Ok(match state.as_deref() {
            Some("done") => Claim::Done,
            Some(_) => Claim::Busy,
            None => Claim::Busy, // lapsed just now: ask again
        })
    }

    /// Records that `group` handled `message_id`.
    pub async fn mark_done(&self, group: &str, message_id: &str) -> Result<(), SharedError> {
        let mut c = self.conn.clone();
        c.set_ex(
            self.key(&format!("seen:{group}:{message_id}")),
            "done",
            SEEN_TTL.as_secs(),
        )
        .await
        .map_err(wrap("SET"))
    }

    /// Gives a claim back unhandled (shutting down).
    pub async fn release(&self, group: &str, message_id: &str) -> Result<(), SharedError> {
        let mut c = self.conn.clone();
        c.del(self.key(&format!("seen:{group}:{message_id}")))
            .await
            .map_err(wrap("DEL"))
    }
}
