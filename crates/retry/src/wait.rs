//! Sleeping without holding up shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps for `delay` unless `cancel` fires first; true when the whole delay passed.
pub async fn sleep_or_cancelled(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_at_its_time_or_at_cancellation() {
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        assert!(sleep_or_cancelled(Duration::from_secs(30), &cancel).await);
        assert_eq!(started.elapsed(), Duration::from_secs(30));

        let started = tokio::time::Instant::now();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            later.cancel();
        });
        assert!(!sleep_or_cancelled(Duration::from_secs(30), &cancel).await);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
