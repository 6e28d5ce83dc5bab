//! Which API key the next request uses: the pure, synchronous heart of the key pool, driven by
//! explicit instants so it is tested without clocks.
//!
//! A key is *ready* when it is enabled, not cooling down, below its `max_in_flight`, its QPS
//! slot has come (requests are spaced at least `1.03 / qps_limit` apart, a token bucket of depth
//! one with a 3 % margin for network jitter, so no 1 s window ever holds more than `qps_limit`
//! requests, where they are sent or where they arrive) and its last 60 s hold fewer
//! than `rpm_limit` requests. The pool-wide QPS cap is one more such spacing over all keys.
//! Among ready keys the best (lowest) priority wins, then the least loaded (in flight per unit of
//! QPS), then the fewest calls; a better-priority key at its limit lets the next priority take
//! the request. Failures that say the key or server is overloaded (429, 5xx, timeouts,
//! connection failures) cool the key for 10 s, doubled per failure in a row up to 120 s, reset by
//! a success; an invalid, forbidden or unpaid key is disabled; a request the provider rejects
//! for its content does not count against the key.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::client::{ErrorClass, LlmError};
use crate::keys::KeySpec;

/// First cooldown after a failure.
pub const COOLDOWN_MIN: Duration = Duration::from_secs(10);
/// Longest cooldown.
pub const COOLDOWN_MAX: Duration = Duration::from_secs(120);
const MINUTE: Duration = Duration::from_secs(60);
/// Spacing margin over `1 / qps`, so jitter on the way never puts one request too many into a
/// provider's 1 s window.
pub const SPACING_MARGIN: f64 = 1.03;

/// What a finished call means for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The key or server is overloaded or failing: cool the key down.
    Overloaded,
    /// The key is unusable (invalid, forbidden, unpaid): disable it.
    KeyRejected,
    /// The request itself was refused or the answer unusable; the key is fine.
    RequestFailed,
    /// The call was abandoned before it ended.
    Cancelled,
}

impl Outcome {
    /// What a call's error says about its key.
    pub fn of_error(e: &LlmError) -> Self {
        match e.class() {
            ErrorClass::KeyRejected => Self::KeyRejected,
            class if class.retryable() => Self::Overloaded,
            _ => Self::RequestFailed,
        }
    }
}

/// A key's state for metrics and `/api` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Usable.
    Active,
    /// Resting after failures.
    Cooling,
    /// Refused by the provider; not used again.
    Disabled,
}

impl KeyState {
    /// The `api_key_status` gauge value: 1 active, 0 cooling, -1 disabled.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Active => 1,
            Self::Cooling => 0,
            Self::Disabled => -1,
        }
    }
}

/// One key's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySnapshot {
    /// Key id.
    pub id: String,
    /// State now.
    pub state: KeyState,
    /// Calls made (abandoned ones included).
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Requests in flight.
    pub in_flight: u32,
    /// Seconds of cooldown left.
    pub cooldown_seconds: f64,
}

impl KeySnapshot {
    /// Successes over finished calls (1 before any).
    pub fn success_rate(&self) -> f64 {
        let done = self.successes + self.failures;
        if done == 0 {
            1.0
        } else {
            self.successes as f64 / done as f64
        }
    }
}

#[derive(Debug)]
struct Key {
    id: String,
    priority: u32,
    spacing: Duration,
    rpm_limit: Option<u32>,
    max_in_flight: u32,
    next_slot: Option<Instant>,
    minute: VecDeque<Instant>,
    in_flight: u32,
    cooling_until: Option<Instant>,
    failures_in_row: u32,
    disabled: bool,
    calls: u64,
    successes: u64,
    failures: u64,
}

impl Key {
    /// When the time-based limits let this key send, or `None` when disabled.
    fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        if self.disabled {
            return None;
        }
        while self
            .minute
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.minute.pop_front();
        }
        let mut at = now;
        if let Some(t) = self.cooling_until {
            at = at.max(t);
        }
        if let Some(t) = self.next_slot {
            at = at.max(t);
        }
        if let Some(rpm) = self.rpm_limit
            && self.minute.len() >= rpm as usize
        {
            let oldest = self.minute[self.minute.len() - rpm as usize];
            at = at.max(oldest + MINUTE);
        }
        Some(at)
    }

    fn state(&self, now: Instant) -> KeyState {
        if self.disabled {
            KeyState::Disabled
        } else if self.cooling_until.is_some_and(|t| t > now) {
            KeyState::Cooling
        } else {
            KeyState::Active
        }
    }

    fn load(&self) -> f64 {
        f64::from(self.in_flight) * self.spacing.as_secs_f64()
    }
}

/// The answer to "which key now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Use key `n` (its slot, RPM entry and in-flight place are taken).
    Granted(usize),
    /// Nothing ready; ask again at this instant, or when a call ends if `None`.
    Wait(Option<Instant>),
    /// Every key is disabled.
    Exhausted,
}

/// The key pool's bookkeeping.
#[derive(Debug)]
pub struct Scheduler {
    keys: Vec<Key>,
    pool_spacing: Option<Duration>,
    pool_next: Option<Instant>,
}

fn spacing(qps: f64) -> Duration {
    Duration::from_secs_f64(SPACING_MARGIN / qps)
}

impl Scheduler {
    /// A scheduler over `keys` with an optional pool-wide QPS cap.
    pub fn new(keys: &[KeySpec], pool_qps: Option<f64>) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| Key {
                    id: k.id.clone(),
                    priority: k.priority,
                    spacing: spacing(k.qps_limit),
                    rpm_limit: k.rpm_limit,
                    max_in_flight: k.max_in_flight.max(1),
                    next_slot: None,
                    minute: VecDeque::new(),
                    in_flight: 0,
                    cooling_until: None,
                    failures_in_row: 0,
                    disabled: false,
                    calls: 0,
                    successes: 0,
                    failures: 0,
                })
                .collect(),
            pool_spacing: pool_qps.map(spacing),
            pool_next: None,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key `n`'s id.
    pub fn id(&self, n: usize) -> &str {
        &self.keys[n].id
    }

    /// Picks a key for a request at `now` and books it, or says how long to wait.
    pub fn acquire(&mut self, now: Instant) -> Acquire {
        let pool_at = self.pool_next.map_or(now, |t| t.max(now));
        let mut best: Option<(usize, (u32, f64, u64))> = None;
        let mut wake: Option<Instant> = None;
        let mut any_enabled = false;
        for (n, key) in self.keys.iter_mut().enumerate() {
            let Some(at) = key.ready_at(now) else {
                continue;
            };
            any_enabled = true;
            if key.in_flight >= key.max_in_flight {
                continue; // woken by a finishing call
            }
            let at = at.max(pool_at);
            if at > now {
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            let rank = (key.priority, key.load(), key.calls);
            if best.is_none_or(|(_, b)| rank < b) {
                best = Some((n, rank));
            }
        }
        if !any_enabled {
            return Acquire::Exhausted;
        }
        let Some((n, _)) = best else {
            return Acquire::Wait(wake);
        };
        let key = &mut self.keys[n];
        key.next_slot = Some(now + key.spacing);
        key.minute.push_back(now);
        key.in_flight += 1;
        key.calls += 1;
        if let Some(s) = self.pool_spacing {
            self.pool_next = Some(now + s);
        }
        Acquire::Granted(n)
    }

    /// Records how key `n`'s call ended.
    pub fn finish(&mut self, n: usize, outcome: Outcome, now: Instant) {
        let key = &mut self.keys[n];
        key.in_flight = key.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Success => {
                key.successes += 1;
                key.failures_in_row = 0;
                key.cooling_until = None;
            }
            Outcome::Overloaded => {
                key.failures += 1;
                key.failures_in_row += 1;
                let factor = 2u32.saturating_pow(key.failures_in_row.min(8) - 1);
                let rest = (COOLDOWN_MIN * factor).min(COOLDOWN_MAX);
                key.cooling_until = Some(now + rest);
            }
            Outcome::KeyRejected => {
                key.failures += 1;
                key.disabled = true;
            }
            Outcome::RequestFailed => key.failures += 1,
            Outcome::Cancelled => {}
        }
    }

    /// Every key's figures at `now`.
    pub fn snapshot(&self, now: Instant) -> Vec<KeySnapshot> {
        self.keys
            .iter()
            .map(|k| KeySnapshot {
                id: k.id.clone(),
                state: k.state(now),
                calls: k.calls,
                successes: k.successes,
                failures: k.failures,
                in_flight: k.in_flight,
                cooldown_seconds: k
                    .cooling_until
                    .map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f64()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ApiKey;

    fn key(id: &str, priority: u32, qps: f64) -> KeySpec {
        KeySpec {
            id: id.into(),
            api_key: ApiKey::new("sk"),
            priority,
            qps_limit: qps,
            rpm_limit: None,
            max_in_flight: 100,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_of_a_key_are_spaced_by_its_qps() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[key("a", 1, 5.0)], None);
        assert_eq!(s.acquire(t0), Acquire::Granted(0));
        assert_eq!(s.acquire(t0 + ms(10)), Acquire::Wait(Some(t0 + ms(206))));
        assert_eq!(s.acquire(t0 + ms(205)), Acquire::Wait(Some(t0 + ms(206))));
        assert_eq!(s.acquire(t0 + ms(206)), Acquire::Granted(0));
    }

    #[test]
    fn no_key_ever_exceeds_its_limit_in_any_second() {
        let t0 = Instant::now();
        let keys = [key("a", 1, 5.0), key("b", 1, 3.0), key("c", 2, 7.0)];
        let mut s = Scheduler::new(&keys, None);
        let mut sent: Vec<Vec<Instant>> = vec![Vec::new(); 3];
        let mut flying: Vec<(Instant, usize)> = Vec::new();
        for step in 0..20_000u64 {
            let now = t0 + ms(step);
            flying.retain(|&(end, n)| {
                let done = end <= now;
                if done {
                    s.finish(n, Outcome::Success, now);
                }
                !done
            });
            while let Acquire::Granted(n) = s.acquire(now) {
                sent[n].push(now);
                flying.push((now + ms(1300), n));
            }
        }
        for (n, times) in sent.iter().enumerate() {
            let limit = keys[n].qps_limit as usize;
            for (i, t) in times.iter().enumerate() {
                let in_window = times[i..]
                    .iter()
                    .take_while(|u| **u < *t + ms(1000))
                    .count();
                assert!(in_window <= limit, "key {n}: {in_window} in a second");
            }
            let rate = times.len() as f64 / 20.0;
            assert!(rate > keys[n].qps_limit * 0.96, "key {n} used at {rate}/s");
        }
    }

    #[test]
    fn a_minute_holds_at_most_rpm_requests() {
        let t0 = Instant::now();
        let mut k = key("a", 1, 1000.0);
        k.rpm_limit = Some(20);
        let mut s = Scheduler::new(&[k], None);
        let mut granted = Vec::new();
        for step in 0..700u64 {
            let now = t0 + ms(step * 100);
            if let Acquire::Granted(_) = s.acquire(now) {
                s.finish(0, Outcome::Success, now);
                granted.push(step * 100);
            }
        }
        assert_eq!(granted.len(), 40, "{granted:?}");
        assert_eq!(granted[19], 1900);
        assert_eq!(
            granted[20], 60_000,
            "the 21st waits for the first to leave the minute"
        );
    }

    #[test]
    fn best_priority_first_then_least_loaded_then_the_next_priority() {
        let t0 = Instant::now();
        let keys = [key("a", 1, 100.0), key("b", 1, 100.0), key("c", 2, 100.0)];
        let mut s = Scheduler::new(&keys, None);
        let mut picks = Vec::new();
        for at in [0, 11, 22, 22, 22] {
            match s.acquire(t0 + ms(at)) {
                Acquire::Granted(n) => picks.push(n),
                other => panic!("{other:?}"),
            }
        }
        // a and b share the load; with both inside their spacing the next priority takes it.
        assert_eq!(picks, [0, 1, 0, 1, 2]);
        let snap = s.snapshot(t0 + ms(22));
        let flying: Vec<u32> = snap.iter().map(|k| k.in_flight).collect();
        assert_eq!(flying, [2, 2, 1]);
    }

    #[test]
    fn failures_cool_a_key_adaptively_and_a_refused_key_is_disabled() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[key("a", 1, 100.0), key("b", 2, 100.0)], None);
        let mut now = t0;
        let mut rests = Vec::new();
        for _ in 0..6 {
            assert_eq!(s.acquire(now), Acquire::Granted(0));
            s.finish(0, Outcome::Overloaded, now);
            let rest = s.snapshot(now)[0].cooldown_seconds;
            rests.push(rest.round() as u64);
            assert_eq!(s.snapshot(now)[0].state, KeyState::Cooling);
            assert_eq!(s.acquire(now + ms(20)), Acquire::Granted(1), "b takes over");
            s.finish(1, Outcome::Success, now + ms(20));
            now += Duration::from_secs_f64(rest) + ms(1);
        }
        assert_eq!(rests, [10, 20, 40, 80, 120, 120]);
        assert_eq!(s.acquire(now), Acquire::Granted(0));
        s.finish(0, Outcome::Success, now);
        s.finish(0, Outcome::Overloaded, now);
        assert_eq!(
            s.snapshot(now)[0].cooldown_seconds.round(),
            10.0,
            "success resets"
        );

        s.finish(1, Outcome::RequestFailed, now);
        assert_eq!(
            s.snapshot(now)[1].state,
            KeyState::Active,
            "content errors spare the key"
        );
        s.finish(1, Outcome::KeyRejected, now);
        assert_eq!(s.snapshot(now)[1].state, KeyState::Disabled);
        let later = now + Duration::from_secs(3600);
        assert_eq!(s.acquire(later), Acquire::Granted(0));
        s.finish(0, Outcome::KeyRejected, later);
        assert_eq!(s.acquire(later + ms(500)), Acquire::Exhausted);
        let snap = s.snapshot(later);
        assert_eq!(snap[0].state.gauge(), -1);
        assert!(snap[0].success_rate() < 0.3);
    }

    #[test]
    fn in_flight_limit_waits_for_a_call_to_end() {
        let t0 = Instant::now();
        let mut k = key("a", 1, 1000.0);
        k.max_in_flight = 2;
        let mut s = Scheduler::new(&[k], None);
        assert_eq!(s.acquire(t0), Acquire::Granted(0));
        assert_eq!(s.acquire(t0 + ms(5)), Acquire::Granted(0));
        assert_eq!(s.acquire(t0 + ms(10)), Acquire::Wait(None));
        s.finish(0, Outcome::Cancelled, t0 + ms(11));
        assert_eq!(s.acquire(t0 + ms(12)), Acquire::Granted(0));
        assert_eq!(s.snapshot(t0)[0].calls, 3);
    }

    #[test]
    fn the_pool_cap_spaces_requests_over_all_keys() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[key("a", 1, 10.0), key("b", 1, 10.0)], Some(4.0));
        assert_eq!(s.acquire(t0), Acquire::Granted(0));
        let gap = Duration::from_secs_f64(SPACING_MARGIN / 4.0);
        assert_eq!(s.acquire(t0 + ms(1)), Acquire::Wait(Some(t0 + gap)));
        assert_eq!(s.acquire(t0 + ms(258)), Acquire::Granted(1));
    }

    #[test]
    fn errors_map_to_what_they_say_about_the_key() {
        let status = |status: u16, code: &str| LlmError::Status {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert_eq!(
            Outcome::of_error(&status(429, "Throttling.RateQuota")),
            Outcome::Overloaded
        );
        assert_eq!(Outcome::of_error(&status(503, "")), Outcome::Overloaded);
        assert_eq!(Outcome::of_error(&LlmError::Timeout), Outcome::Overloaded);
        assert_eq!(
            Outcome::of_error(&status(401, "InvalidApiKey")),
            Outcome::KeyRejected
        );
        assert_eq!(
            Outcome::of_error(&status(400, "Arrearage")),
            Outcome::KeyRejected
        );
        assert_eq!(Outcome::of_error(&status(403, "")), Outcome::KeyRejected);
        assert_eq!(
            Outcome::of_error(&status(400, "DataInspectionFailed")),
            Outcome::RequestFailed
        );
        assert_eq!(
            Outcome::of_error(&LlmError::Response("x".into())),
            Outcome::RequestFailed
        );
    }
}
