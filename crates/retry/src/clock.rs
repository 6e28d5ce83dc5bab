//! The time seam of synchronous code (cooldowns, holds, rate windows): [`Clock::now`] instead
//! of `Instant::now()`, so that tests can run that code on tokio's paused clock.

use std::time::Instant;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// Tokio's clock: the system's, except inside a runtime whose time is paused (tests), where it
/// moves only when the test advances it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let clock = TokioClock;
        let before = clock.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now() - before, Duration::from_secs(90));
    }
}
