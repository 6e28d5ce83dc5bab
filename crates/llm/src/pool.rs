//! The API-key pool (SPEC 6): every LLM call of the process goes through one [`KeyPool`], which
//! picks a key with the [`Scheduler`], waits (never longer than the request timeout) when every
//! key is at its limits, makes the attempt with that key, and on a retryable failure backs off
//! and tries again, on another key when one is ready since the failed key cools down. Several
//! requests run per key at once; an abandoned call gives its place back. Counts per outcome,
//! latency and token use are kept for the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use serde_json::Value;

use super::client::{Completer, Completion, LlmClient, LlmError, retry_calls};
use super::scheduler::{Acquire, KeySnapshot, Outcome, Scheduler};
use crate::keys::KeyPoolConfig;

/// Upper bounds (seconds) of the call latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0];

/// Counts of finished requests by outcome, latency and tokens.
#[derive(Debug)]
pub struct RequestStats {
    by_status: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
    tokens: AtomicU64,
    waiting: AtomicU64,
    in_flight: AtomicU64,
}

impl Default for RequestStats {
    fn default() -> Self {
        Self {
            by_status: Mutex::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            tokens: AtomicU64::default(),
            waiting: AtomicU64::default(),
            in_flight: AtomicU64::default(),
        }
    }
}

impl RequestStats {
    /// Counts one request that ended with `status` (`success`, `parse_error`, or an
    /// [`LlmError::kind`]).
    pub fn record(&self, status: &'static str) {
        let mut m = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(status).or_default() += 1;
    }

    /// Requests by status so far.
    pub fn by_status(&self) -> BTreeMap<&'static str, u64> {
        self.by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Latency of answered attempts.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Tokens the provider reported using.
    pub fn tokens(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// Requests waiting for a key now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests in flight (sent, not answered) now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The pool of keys every call uses.
#[derive(Debug)]
pub struct KeyPool {
    scheduler: Mutex<Scheduler>,
    wake: tokio::sync::Notify,
    clients: Vec<LlmClient>,
    max_retry: u32,
    wait_limit: Duration,
    /// Outcome counts, latency, tokens.
    pub stats: RequestStats,
}

/// A key taken for one attempt; dropping it unfinished gives the place back.
struct Lease<'a> {
    pool: &'a KeyPool,
    key: usize,
    done: bool,
}

impl Lease<'_> {
    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.pool.finish(self.key, outcome);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.finish(self.key, Outcome::Cancelled);
        }
    }
}

/// Decrements a gauge when dropped.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(g: &'a AtomicU64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Self(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl KeyPool {
    /// A pool over the configured keys, all calling `base_url` with `timeout` per attempt; a
    /// request waits at most `timeout` for a key and is retried `max_retry` times.
    pub fn new(
        base_url: &str,
        config: &KeyPoolConfig,
        timeout: Duration,
        max_retry: u32,
    ) -> Result<Self, LlmError> {
        let mut clients = Vec::with_capacity(config.keys.len());
        for key in &config.keys {
            let client = match clients.first() {
                None => LlmClient::new(base_url, key.api_key.clone(), timeout, 0)?,
                Some(first) => LlmClient::with_key(first, key.api_key.clone()),
            };
            clients.push(client);
        }
        Ok(Self {
            scheduler: Mutex::new(Scheduler::new(&config.keys, config.qps_limit)),
            wake: tokio::sync::Notify::new(),
            clients,
            max_retry,
            wait_limit: timeout,
            stats: RequestStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, key: usize, outcome: Outcome) {
        self.lock().finish(key, outcome, Instant::now());
        self.wake.notify_waiters();
    }

    /// Every key's figures now.
    pub fn snapshot(&self) -> Vec<KeySnapshot> {
        self.lock().snapshot(Instant::now())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether the pool has no key.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Takes a key, waiting until `deadline` at most.
    async fn acquire(&self, deadline: Instant) -> Result<Lease<'_>, LlmError> {
        let _waiting = Gauge::up(&self.stats.waiting);
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let wake = match self.lock().acquire(now) {
                Acquire::Granted(key) => {
                    return Ok(Lease {
                        pool: self,
                        key,
                        done: false,
                    });
                }
                Acquire::Exhausted => {
                    return Err(LlmError::NoKey("every API key is disabled".into()));
                }
                Acquire::Wait(at) => at,
            };
            if now >= deadline {
                return Err(LlmError::NoKey(format!(
                    "no API key free within {:.0} s",
                    self.wait_limit.as_secs_f64()
                )));
            }
            let until = wake.map_or(deadline, |w| w.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Sends `body`, retrying retryable failures (on another key when one is ready) with
    /// backoff. Failures are counted here; the caller counts `success` or `parse_error` once it
    /// has read the answer.
    pub async fn complete(&self, body: &Value) -> Result<Completion, LlmError> {
        let result = retry_calls(self.max_retry, |_| self.attempt(body)).await;
        if let Err(e) = &result {
            self.stats.record(e.kind());
        }
        result
    }

    async fn attempt(&self, body: &Value) -> Result<Completion, LlmError> {
        let lease = self.acquire(Instant::now() + self.wait_limit).await?;
        let client = &self.clients[lease.key];
        let result = {
            let _flying = Gauge::up(&self.stats.in_flight);
            client.attempt(body).await
        };
        match result {
            Ok(mut done) => {
                let key = lease.key;
                lease.finish(Outcome::Success);
                self.stats.latency.observe(done.latency.as_secs_f64());
                self.stats.tokens.fetch_add(done.tokens, Ordering::Relaxed);
                done.key_id = self.lock().id(key).to_string();
                Ok(done)
            }
            Err(e) => {
                let outcome = Outcome::of_error(&e);
                if outcome == Outcome::KeyRejected {
                    let id = self.lock().id(lease.key).to_string();
                    tracing::warn!(key = %id, error = %e, "API key refused; disabled");
                }
                lease.finish(outcome);
                Err(e)
            }
        }
    }
}

impl Completer for KeyPool {
    fn complete<'a>(
        &'a self,
        body: &'a Value,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Completion, LlmError>> + Send + 'a>,
    > {
        Box::pin(KeyPool::complete(self, body))
    }

    fn record(&self, outcome: &'static str) {
        self.stats.record(outcome);
    }
}
