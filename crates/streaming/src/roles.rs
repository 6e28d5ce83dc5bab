//! The work of the `tasks` and `llm-worker` roles on one message each, as [`Handler`]s for the
//! shared consume loop. `tasks` splits a detection into one task per group worth asking about;
//! `llm-worker` shows one group to the LLM through the key pool and publishes the answer, a
//! failed call included (so the aggregator can finish without waiting for its timeout).

use std::sync::Arc;

use super::messages::{
    AssessmentOutcome, AssessmentTask, DetectionRecord, FindingRecord, MessageError, decode,
    encode, tasks_for,
};
use super::runner::{HandleError, HandleFuture, Handler, Outgoing};
use llm::keys::RiskThresholds;
use llm::parse::parse_answer;
use llm::pool::KeyPool;
use llm::prompt::{MAX_GROUPS, PromptConfig, chat_body};

fn malformed(e: &MessageError) -> HandleError {
    HandleError::Permanent(e.to_string())
}

/// `detection-results` -> `assessment-tasks`.
#[derive(Debug, Clone)]
pub struct TasksHandler {
    /// Where tasks go.
    pub tasks_topic: String,
}

impl TasksHandler {
    /// The tasks of one detection payload, encoded.
    pub fn outgoing(&self, payload: &[u8]) -> Result<Vec<Outgoing>, HandleError> {
        let record: DetectionRecord = decode(payload).map_err(|e| malformed(&e))?;
        tasks_for(&record, MAX_GROUPS)
            .iter()
            .map(|t| {
                Ok(Outgoing {
                    topic: self.tasks_topic.clone(),
                    key: t.camera_id.to_string(),
                    payload: encode(t).map_err(|e| malformed(&e))?,
                })
            })
            .collect()
    }
}

impl Handler for TasksHandler {
    fn handle(&self, payload: Arc<[u8]>) -> HandleFuture {
        let out = self.outgoing(&payload);
        Box::pin(async move { out })
    }
}

/// `assessment-tasks` -> `risk-assessment-results`, through the LLM.
#[derive(Debug, Clone)]
pub struct WorkerHandler {
    /// The key pool.
    pub pool: Arc<KeyPool>,
    /// How requests are built.
    pub prompt: PromptConfig,
    /// Confidence -> level where the model's level is unusable.
    pub thresholds: RiskThresholds,
    /// Where answers go.
    pub results_topic: String,
}

impl WorkerHandler {
    async fn answer(self, payload: Arc<[u8]>) -> Result<Vec<Outgoing>, HandleError> {
        let task: AssessmentTask = decode(&payload).map_err(|e| malformed(&e))?;
        let body = chat_body(
            &self.prompt,
            task.flagged,
            std::slice::from_ref(&task.summary),
            std::slice::from_ref(&task.image_base64),
        );
        let mut outcome = AssessmentOutcome {
            message_id: format!("result:{}", task.task_id),
            task_id: task.task_id.clone(),
            detection_id: task.detection_id.clone(),
            camera_id: task.camera_id,
            instance_id: task.instance_id.clone(),
            group_id: task.group_id,
            ok: false,
            finding: None,
            raw_text: String::new(),
            model: self.prompt.model.clone(),
            latency_seconds: 0.0,
            error: None,
        };
        match self.pool.complete(&body).await {
            Ok(done) => {
                outcome.raw_text = done.text.clone();
                outcome.model = done.model;
                outcome.latency_seconds = done.latency.as_secs_f64();
                match parse_answer(&done.text, &self.thresholds) {
                    Ok(answer) => {
                        self.pool.stats.record("success");
                        outcome.ok = true;
                        outcome.finding = answer.results.first().map(|f| FindingRecord {
                            description: f.description.clone(),
                            risk_level: f.level,
                            confidence: f.confidence,
                            risk_types: f.risk_types.clone(),
                            trigger_object_ids: f.trigger_object_ids.clone(),
                            rule_verdict: f.rule_verdict.map(str::to_string),
                        });
                    }
                    Err(e) => {
                        self.pool.stats.record("parse_error");
                        outcome.error = Some(format!("parse_error: {e}"));
                    }
                }
            }
            Err(e) => outcome.error = Some(format!("{}: {e}", e.kind())),
        }
        Ok(vec![Outgoing {
            topic: self.results_topic.clone(),
            key: task.camera_id.to_string(),
            payload: encode(&outcome).map_err(|e| malformed(&e))?,
        }])
    }
}

impl Handler for WorkerHandler {
    fn handle(&self, payload: Arc<[u8]>) -> HandleFuture {
        Box::pin(self.clone().answer(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::GroupBrief;

    #[test]
    fn a_detection_becomes_one_task_per_group_with_a_crop() {
        let record = DetectionRecord {
            message_id: "det:1-a-9".into(),
            detection_id: "1-a-9".into(),
            camera_id: 1,
            instance_id: "a".into(),
            result: protocol::DetectionResult {
                group_images: vec![protocol::detection::GroupImage {
                    group_index: 1,
                    group_id: 5,
                    image_base64: "QUJD".into(),
                    bbox: Default::default(),
                    object_count: 2,
                    classes: vec!["car".into()],
                    image_width: 3,
                    image_height: 3,
                }],
                ..Default::default()
            },
            groups: vec![
                GroupBrief {
                    group_id: 5,
                    group_index: 1,
                    summary: "Group 1 (id 5): 2 cars".into(),
                    flagged: true,
                },
                GroupBrief {
                    group_id: 6,
                    group_index: 2,
                    summary: "Group 1 (id 6): 2 persons".into(),
                    flagged: false,
                },
            ],
        };
        let h = TasksHandler {
            tasks_topic: "assessment-tasks".into(),
        };
        let out = h.outgoing(&encode(&record).unwrap()).unwrap();
        assert_eq!(out.len(), 1, "group 6 has no crop");
        assert_eq!(
            (out[0].topic.as_str(), out[0].key.as_str()),
            ("assessment-tasks", "1")
        );
        let task: AssessmentTask = decode(&out[0].payload).unwrap();
        assert_eq!((task.group_id, task.task_count), (5, 1));
        assert!(matches!(
            h.outgoing(b"{\"not\": \"a record\"}"),
            Err(HandleError::Permanent(_))
        ));
    }
}
