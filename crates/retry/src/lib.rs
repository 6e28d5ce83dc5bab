//! Waiting and trying again, written once: every reconnect, restart and retry of traffic-algo
//! goes through these, so they all back off the same way and all give way to shutdown.
//!
//! Layout:
//! - [`backoff`]: [`Backoff`], capped exponential delays with optional jitter.
//! - [`wait`]: [`sleep_or_cancelled`], a sleep that ends early on cancellation.
//! - [`attempts`]: [`retry`], the one retry loop (classified errors, backoff, cancellation).
//! - [`clock`]: [`Clock`], the time seam of synchronous code (tokio's clock, pausable in tests).
//!
//! Async waits use tokio's timer, so tests drive them with tokio's paused clock.

pub mod attempts;
pub mod backoff;
pub mod clock;
pub mod wait;

pub use attempts::{Retried, retry};
pub use backoff::Backoff;
pub use clock::{Clock, TokioClock};
pub use wait::sleep_or_cancelled;
