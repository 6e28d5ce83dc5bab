//! The LLM beside one camera's pipeline. The analysis thread offers each judged frame with
//! [`CameraLlm::offer`]; a request goes out only when none is in flight and the cooldown since
//! the last one has passed (failed calls count), on the async runtime, so the frame loop never
//! waits. The answer is kept and shown with the camera's next results for the alert hold
//! ([`CameraLlm::current`]), attached to groups by `groupId`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vision::Detection;
use vision::scene::SceneFrame;

use super::parse::{Answer, parse_answer};
use super::pool::KeyPool;
use super::prompt::{PromptConfig, build_request};
use crate::camera::evidence::GroupCrop;
use crate::config::RiskThresholds;

/// What every camera's LLM shares.
#[derive(Debug)]
pub struct LlmLink {
    /// The key pool every call goes through.
    pub pool: Arc<KeyPool>,
    /// How requests are built.
    pub prompt: PromptConfig,
    /// Confidence -> level where the model's level is unusable.
    pub thresholds: RiskThresholds,
    /// Least time between two requests of one camera.
    pub cooldown: Duration,
    /// How long an answer is shown after it arrived.
    pub hold: Duration,
    /// The runtime requests run on.
    pub runtime: tokio::runtime::Handle,
}

/// An answer with what it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The parsed answer.
    pub answer: Answer,
    /// `groupId` of the request's group `k` at `k - 1`.
    pub group_ids: Vec<u64>,
    /// The model's text as received.
    pub raw_text: String,
    /// The model that answered.
    pub model: String,
    /// Call latency.
    pub latency: Duration,
    /// Wall-clock time of the frame the request showed.
    pub asked_at: chrono::DateTime<chrono::Utc>,
}

/// Counters of one camera's LLM use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmCounters {
    /// Requests sent.
    pub requests: u64,
    /// Answers used.
    pub answers: u64,
    /// Calls that failed after their retries.
    pub failures: u64,
    /// Answers that could not be read.
    pub parse_errors: u64,
}

#[derive(Debug, Default)]
struct State {
    in_flight: bool,
    next_allowed: Option<Instant>,
    latest: Option<(Verdict, Instant)>,
    shown: bool,
    counters: LlmCounters,
}

/// One camera's LLM.
#[derive(Debug, Clone)]
pub struct CameraLlm {
    link: Arc<LlmLink>,
    state: Arc<Mutex<State>>,
}

impl CameraLlm {
    /// An LLM for one camera.
    pub fn new(link: Arc<LlmLink>) -> Self {
        Self {
            link,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters so far.
    pub fn counters(&self) -> LlmCounters {
        self.lock().counters
    }

    /// Offers a judged frame; sends a request if one is due. Never waits for the call.
    pub fn offer(
        &self,
        dets: &[Detection],
        scene: &SceneFrame,
        crops: &[Option<GroupCrop>],
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let now = Instant::now();
        {
            let s = self.lock();
            // One call at a time, the cooldown, and every answer shown before the next call
            // (so a quick second answer never hides the first).
            let unshown = s.latest.is_some() && !s.shown;
            if s.in_flight
                || unshown
                || s.next_allowed.is_some_and(|t| now < t)
                || scene.groups.is_empty()
            {
                return;
            }
        }
        let request = match build_request(&self.link.prompt, dets, scene, crops) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare the LLM images");
                return;
            }
        };
        {
            let mut s = self.lock();
            s.in_flight = true;
            s.next_allowed = Some(now + self.link.cooldown);
            s.counters.requests += 1;
        }
        let this = self.clone();
        self.link.runtime.spawn(async move {
            let result = this.link.pool.complete(&request.body).await;
            let mut s = this.lock();
            s.in_flight = false;
            match result {
                Ok(done) => match parse_answer(&done.text, &this.link.thresholds) {
                    Ok(answer) => {
                        this.link.pool.stats.record("success");
                        s.counters.answers += 1;
                        s.latest = Some((
                            Verdict {
                                answer,
                                group_ids: request.group_ids,
                                raw_text: done.text,
                                model: done.model,
                                latency: done.latency,
                                asked_at: at,
                            },
                            Instant::now(),
                        ));
                        s.shown = false;
                    }
                    Err(e) => {
                        this.link.pool.stats.record("parse_error");
                        s.counters.parse_errors += 1;
                        tracing::warn!(error = %e, "LLM answer unreadable");
                    }
                },
                Err(e) => {
                    s.counters.failures += 1;
                    tracing::warn!(error = %e, kind = e.kind(), "LLM call failed");
                }
            }
        });
    }

    /// The answer to show with the next result, if one arrived within the hold (or has not been
    /// shown yet), and whether this is its first showing.
    pub fn current(&self) -> Option<(Verdict, bool)> {
        let mut s = self.lock();
        let (verdict, arrived) = s.latest.as_ref()?;
        if s.shown && arrived.elapsed() > self.link.hold {
            s.latest = None;
            return None;
        }
        let verdict = verdict.clone();
        let fresh = !s.shown;
        s.shown = true;
        Some((verdict, fresh))
    }
}
