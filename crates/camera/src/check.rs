//! `check_camera`: can a URL be opened and its first picture decoded within 5 s? Runs beside
//! the connection's other messages, never blocking them.

use std::time::{Duration, Instant};

use super::sampler::DecodeJob;
use super::source::{Source, SourceError, SourcePolicy, check_policy, guards_resolution};
use super::video::VideoDecoder;

/// Time limit of a check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `url`, waits for a keyframe and decodes it; returns the time to the first picture.
/// `hold` (the caller's permits) lives until the last decode ends, even when the probe is
/// dropped halfway: a decode on the blocking pool cannot be cancelled.
pub async fn probe<H: Send + Sync + 'static>(
    url: &str,
    policy: &SourcePolicy,
    hold: H,
) -> Result<Duration, SourceError> {
    let hold = std::sync::Arc::new(hold);
    let parsed = check_policy(url, policy)?;
    let guard = guards_resolution(&parsed, policy);
    let started = Instant::now();
    let attempt = async {
        let mut source = Source::open(&parsed, guard).await?;
        loop {
            let frame = source.next_frame().await?;
            if !frame.keyframe {
                continue;
            }
            let job = DecodeJob {
                gop: 0,
                frames: vec![frame],
                resume_from: 0,
            };
            let held = std::sync::Arc::clone(&hold);
            let decoded = tokio::task::spawn_blocking(move || {
                let _held = held;
                VideoDecoder::new().and_then(|mut d| d.decode(&job))
            })
            .await
            .map_err(|e| SourceError::Stream(e.to_string()))?;
            match decoded {
                Ok(Some(_)) => return Ok(started.elapsed()),
                Ok(None) => continue,
                Err(e) => return Err(SourceError::Stream(e.to_string())),
            }
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(SourceError::Timeout(
            "after 5 s without a decoded picture",
        )))
}
