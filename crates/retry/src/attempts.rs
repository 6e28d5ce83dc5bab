//! The one retry loop: try, and while the error is worth retrying and attempts remain, wait the
//! next backoff delay and try again; a cancellation ends the wait and returns the last error.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::wait::sleep_or_cancelled;

/// A success and the attempts it took (1 = first try).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried<T> {
    /// The result.
    pub value: T,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails with an error
/// `retryable` refuses, or `max_retries` retries are spent, waiting `backoff`'s delays between
/// attempts; a cancelled `cancel` stops the waiting and returns the last error. `on_retry` hears
/// each error that will be retried (for logs).
pub async fn retry<T, E, Fut>(
    max_retries: u32,
    mut backoff: Backoff,
    cancel: Option<&CancellationToken>,
    retryable: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, u32),
    mut attempt: impl FnMut(u32) -> Fut,
) -> Result<Retried<T>, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 0;
    loop {
        n += 1;
        match attempt(n).await {
            Ok(value) => return Ok(Retried { value, attempts: n }),
            Err(e) if retryable(&e) && n <= max_retries => {
                on_retry(&e, n);
                let delay = backoff.next_delay();
                let waited = match cancel {
                    Some(token) => sleep_or_cancelled(delay, token).await,
                    None => {
                        tokio::time::sleep(delay).await;
                        true
                    }
                };
                if !waited {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_with_backoff_until_success() {
        let started = Instant::now();
        let mut times = Vec::new();
        let done = retry(
            3,
            backoff(),
            None,
            |_: &&str| true,
            |_, _| {},
            |n| {
                times.push(started.elapsed());
                async move { if n < 3 { Err("busy") } else { Ok(n * 10) } }
            },
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            Retried {
                value: 30,
                attempts: 3
            }
        );
        assert_eq!(
            times,
            [
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_millis(1500)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_spent_retries_end_at_once() {
        let mut calls = 0;
        let e = retry(
            5,
            backoff(),
            None,
            |e: &&str| *e != "bad key",
            |_, _| {},
            |_| {
                calls += 1;
                async { Err::<(), _>("bad key") }
            },
        )
        .await
        .unwrap_err();
        assert_eq!((e, calls), ("bad key", 1));
        let mut calls = 0;
        let e = retry(
            2,
            backoff(),
            None,
            |_: &&str| true,
            |_, _| {},
            |_| {
                calls += 1;
                async { Err::<(), _>("busy") }
            },
        )
        .await
        .unwrap_err();
        assert_eq!((e, calls), ("busy", 3), "one try and two retries");
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait_with_the_last_error() {
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            later.cancel();
        });
        let started = Instant::now();
        let mut heard = Vec::new();
        let e = retry(
            10,
            Backoff::new(Duration::from_secs(60), Duration::from_secs(60)),
            Some(&cancel),
            |_: &&str| true,
            |e, n| heard.push((e.to_string(), n)),
            |_| async { Err::<(), _>("down") },
        )
        .await
        .unwrap_err();
        assert_eq!(e, "down");
        assert_eq!(heard, [("down".to_string(), 1)]);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }
}
