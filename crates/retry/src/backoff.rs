//! Capped exponential backoff: each delay doubles the previous one up to a cap, optionally
//! stretched by up to a fraction of itself (jitter) so that many cameras failing together do not
//! reconnect in step.

use std::time::Duration;

/// Delays that double from `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    jitter: f64,
}

impl Backoff {
    /// Delays `min`, `2 min`, `4 min`, ... capped at `max`, without jitter.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
            jitter: 0.0,
        }
    }

    /// The same, each delay stretched by a random part of up to `fraction` of itself.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The delay to wait now; the next one doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        base + base.mul_f64(random_unit() * self.jitter)
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A number in `[0, 1)`, good enough to spread reconnects (the clock's nanoseconds).
fn random_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(0.2);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (d, base) in delays.iter().zip([1u64, 2, 4, 8, 16, 30, 30, 30]) {
            let base = Duration::from_secs(base);
            assert!(*d >= base && *d <= base.mul_f64(1.2), "{d:?} vs {base:?}");
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1300));
    }

    #[test]
    fn without_jitter_the_delays_are_exact() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        let delays: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 2000]);
    }
}
