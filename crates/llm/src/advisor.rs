//! The LLM beside one camera's pipeline. The analysis thread offers each judged frame with
//! [`Advisor::offer`]; a request goes out only when none is in flight and the cooldown since
//! the last one has passed (failed calls count), on the async runtime, so the frame loop never
//! waits. The answer is kept and shown with the camera's next results for the alert hold
//! ([`Advisor::current`]), attached to groups by `groupId` ([`annotate`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imaging::GroupCrop;
use protocol::api::LlmCounters;
use protocol::detection::{AlertSource, DangerAlert};
use protocol::{DetectionResult, RiskLevel};
use vision::Detection;
use vision::scene::SceneFrame;

use crate::client::Completer;
use crate::keys::RiskThresholds;
use crate::parse::{Answer, Finding, parse_answer};
use crate::prompt::{PromptConfig, build_request};
use retry::Clock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every camera's advisor shares.
#[derive(Debug)]
pub struct AdvisorLink {
    /// What answers the requests (the API-key pool).
    pub completer: Arc<dyn Completer>,
    /// Where cooldowns and holds read the time.
    pub clock: Arc<dyn Clock>,
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
    /// Where requests are tracked, so that shutdown waits for them.
    pub tasks: TaskTracker,
    /// Cancelled at shutdown: requests in flight are abandoned.
    pub shutdown: CancellationToken,
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
pub struct Advisor {
    link: Arc<AdvisorLink>,
    state: Arc<Mutex<State>>,
}

impl Advisor {
    /// An LLM for one camera.
    pub fn new(link: Arc<AdvisorLink>) -> Self {
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
        let now = self.link.clock.now();
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
        let call = async move {
            let result = tokio::select! {
                result = this.link.completer.complete(&request.body) => result,
                () = this.link.shutdown.cancelled() => {
                    this.lock().in_flight = false;
                    return;
                }
            };
            let mut s = this.lock();
            s.in_flight = false;
            match result {
                Ok(done) => match parse_answer(&done.text, &this.link.thresholds) {
                    Ok(answer) => {
                        this.link.completer.record("success");
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
                            this.link.clock.now(),
                        ));
                        s.shown = false;
                    }
                    Err(e) => {
                        this.link.completer.record("parse_error");
                        s.counters.parse_errors += 1;
                        tracing::warn!(error = %e, "LLM answer unreadable");
                    }
                },
                Err(e) => {
                    s.counters.failures += 1;
                    tracing::warn!(error = %e, kind = e.kind(), "LLM call failed");
                }
            }
        };
        self.link.tasks.spawn_on(call, &self.link.runtime);
    }

    /// The answer to show with the next result, if one arrived within the hold (or has not been
    /// shown yet), and whether this is its first showing.
    pub fn current(&self) -> Option<(Verdict, bool)> {
        let mut s = self.lock();
        let (verdict, arrived) = s.latest.as_ref()?;
        if s.shown && self.link.clock.now().duration_since(*arrived) > self.link.hold {
            s.latest = None;
            return None;
        }
        let verdict = verdict.clone();
        let fresh = !s.shown;
        s.shown = true;
        Some((verdict, fresh))
    }
}

/// Attaches an answer's findings with a level to `result`, each on the group it names (by
/// `groupId`, when that group is in this frame): an alert with `source: "llm"`, the group's
/// `riskLevel` raised to it, `maxRiskLevel` and `hasDangerousDriving` updated, and the answer's
/// latency, model and text. `fresh`: first showing of the answer (else its alerts are stale).
/// Returns the findings attached.
pub fn annotate(result: &mut DetectionResult, verdict: &Verdict, fresh: bool) -> Vec<Finding> {
    let started_at = verdict
        .asked_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut attached = Vec::new();
    for f in verdict
        .answer
        .results
        .iter()
        .filter(|f| f.level > RiskLevel::None)
    {
        let id = verdict
            .group_ids
            .get(f.group_index.wrapping_sub(1))
            .copied();
        attach_alert(
            result,
            DangerAlert {
                kind: alert_kind(&f.risk_types),
                description: f.description.clone(),
                risk_level: f.level,
                confidence: f.confidence,
                group_index: None,
                group_id: id,
                risk_types: f.risk_types.clone(),
                trigger_object_ids: f.trigger_object_ids.clone(),
                source: AlertSource::Llm,
                started_at: started_at.clone(),
                is_stale: !fresh,
                measures: Default::default(),
                llm_verdict: None,
            },
        );
        attached.push(f.clone());
    }
    for f in &verdict.answer.results {
        let id = verdict.group_ids.get(f.group_index.wrapping_sub(1));
        if let (Some(id), Some(said)) = (id, f.rule_verdict) {
            mark_rule_alerts(result, *id, said);
        }
    }
    result.llm_latency = Some(verdict.latency.as_secs_f64());
    result.llm_model = Some(verdict.model.clone());
    result.llm_raw_text = Some(verdict.raw_text.clone());
    attached
}

/// Marks the rule alerts of group `group_id` as `confirmed` or `refuted` by the model; they
/// stay in the result either way.
pub fn mark_rule_alerts(result: &mut DetectionResult, group_id: u64, verdict: &str) {
    for a in &mut result.dangerous_driving_results {
        if a.source == AlertSource::Rules && a.group_id == Some(group_id) {
            a.llm_verdict = Some(verdict.to_string());
        }
    }
}

/// The `type` of an LLM alert: its first risk type, else `llm_assessment`.
pub fn alert_kind(risk_types: &[String]) -> String {
    risk_types
        .first()
        .map_or("llm_assessment", String::as_str)
        .to_string()
}

/// Adds an LLM alert to `result`: on the group its `group_id` names when that group is in the
/// frame (`groupIndex` set, the group's `riskLevel` raised to the alert's), with `maxRiskLevel`
/// and `hasDangerousDriving` updated. Standalone mode and streaming's merge both go through it.
pub fn attach_alert(result: &mut DetectionResult, mut alert: DangerAlert) {
    let group = alert
        .group_id
        .and_then(|id| result.traffic_groups.iter_mut().find(|g| g.group_id == id));
    alert.group_index = group.map(|g| {
        g.risk_level = g.risk_level.max(alert.risk_level);
        g.group_index
    });
    result.max_risk_level = result.max_risk_level.max(alert.risk_level);
    result.has_dangerous_driving = true;
    result.dangerous_driving_results.push(alert);
}
