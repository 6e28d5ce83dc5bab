//! The merged result of one detection (pure): the frame's `detection_result` with each LLM
//! answer attached to its group by `groupId`, as in standalone mode (`source: "llm"`, the
//! group's `riskLevel` raised, `maxRiskLevel` and `hasDangerousDriving` updated, `llmLatency`,
//! `llmModel`, `llmRawText`), plus `detectionId` and `partial` (some answers never came).

use llm::advisor::{alert_kind, attach_alert, mark_rule_alerts};
use protocol::detection::{AlertSource, DangerAlert};
use protocol::{DetectionResult, RiskLevel};

use super::messages::{AssessmentOutcome, DetectionRecord};

/// Merges `outcomes` into `record`'s result; `expected` answers were asked for.
pub fn merge(
    record: &DetectionRecord,
    outcomes: &[AssessmentOutcome],
    expected: usize,
) -> DetectionResult {
    let mut data = record.result.clone();
    let mut texts = Vec::new();
    let mut latency: Option<f64> = None;
    let mut model = None;
    let mut answered = 0;
    for o in outcomes {
        if !o.ok {
            continue;
        }
        answered += 1;
        latency = Some(latency.map_or(o.latency_seconds, |l| l.max(o.latency_seconds)));
        model.get_or_insert_with(|| o.model.clone());
        texts.push(o.raw_text.clone());
        let Some(f) = &o.finding else { continue };
        if let Some(said) = &f.rule_verdict {
            mark_rule_alerts(&mut data, o.group_id, said);
        }
        if f.risk_level == RiskLevel::None {
            continue;
        }
        let alert = DangerAlert {
            kind: alert_kind(&f.risk_types),
            description: f.description.clone(),
            risk_level: f.risk_level,
            confidence: f.confidence,
            group_index: None,
            group_id: Some(o.group_id),
            risk_types: f.risk_types.clone(),
            trigger_object_ids: f.trigger_object_ids.clone(),
            source: AlertSource::Llm,
            started_at: data.timestamp.clone(),
            is_stale: false,
            measures: Default::default(),
            llm_verdict: None,
        };
        attach_alert(&mut data, alert);
    }
    data.llm_latency = latency;
    data.llm_model = model;
    data.llm_raw_text = (!texts.is_empty()).then(|| texts.join("\n"));
    data.detection_id = Some(record.detection_id.clone());
    data.partial = Some(answered < expected);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::FindingRecord;
    use protocol::detection::TrafficGroup;
    use serde_json::{Value, json};

    fn record() -> DetectionRecord {
        DetectionRecord {
            message_id: "det:1".into(),
            detection_id: "1-a-1".into(),
            camera_id: 1,
            instance_id: "a".into(),
            result: DetectionResult {
                timestamp: "2026-11-28T10:00:00.000Z".into(),
                traffic_groups: vec![group(1, 40, RiskLevel::Low), group(2, 41, RiskLevel::None)],
                dangerous_driving_results: vec![DangerAlert {
                    kind: "congestion".into(),
                    description: String::new(),
                    risk_level: RiskLevel::Low,
                    confidence: 0.5,
                    group_index: None,
                    group_id: None,
                    risk_types: vec!["congestion".into()],
                    trigger_object_ids: vec![],
                    source: AlertSource::Rules,
                    started_at: String::new(),
                    is_stale: false,
                    measures: Default::default(),
                    llm_verdict: None,
                }],
                max_risk_level: RiskLevel::Low,
                ..Default::default()
            },
            groups: vec![],
        }
    }

    fn group(index: usize, id: u64, level: RiskLevel) -> TrafficGroup {
        TrafficGroup {
            group_index: index,
            group_id: id,
            object_count: 2,
            bbox: Default::default(),
            classes: vec!["car".into()],
            average_confidence: 0.5,
            risk_level: level,
            member_track_ids: vec![],
        }
    }

    fn merged(outcomes: &[AssessmentOutcome], expected: usize) -> Value {
        serde_json::to_value(merge(&record(), outcomes, expected)).unwrap()
    }

    fn outcome(group: u64, level: RiskLevel, ok: bool) -> AssessmentOutcome {
        AssessmentOutcome {
            message_id: format!("result:1-a-1/{group}"),
            task_id: format!("1-a-1/{group}"),
            detection_id: "1-a-1".into(),
            camera_id: 1,
            instance_id: "a".into(),
            group_id: group,
            ok,
            finding: ok.then(|| FindingRecord {
                description: "close".into(),
                risk_level: level,
                confidence: 0.9,
                risk_types: vec!["tailgating".into()],
                trigger_object_ids: vec![3],
                rule_verdict: None,
            }),
            raw_text: format!("answer {group}"),
            model: "qwen-vl-plus".into(),
            latency_seconds: group as f64 / 10.0,
            error: (!ok).then(|| "timeout".into()),
        }
    }

    #[test]
    fn answers_land_on_their_groups() {
        let m = merged(
            &[
                outcome(41, RiskLevel::High, true),
                outcome(40, RiskLevel::None, true),
            ],
            2,
        );
        assert_eq!(m["trafficGroups"][1]["riskLevel"], "high");
        assert_eq!(
            m["trafficGroups"][0]["riskLevel"], "low",
            "a none answer lowers nothing"
        );
        let alerts = m["dangerousDrivingResults"].as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1]["source"], "llm");
        assert_eq!(
            (
                alerts[1]["groupId"].clone(),
                alerts[1]["groupIndex"].clone()
            ),
            (json!(41), json!(2))
        );
        assert_eq!(alerts[1]["type"], "tailgating");
        assert_eq!(
            (m["maxRiskLevel"].clone(), m["hasDangerousDriving"].clone()),
            (json!("high"), json!(true))
        );
        assert_eq!(m["llmLatency"], 4.1);
        assert_eq!(m["llmRawText"], "answer 41\nanswer 40");
        assert_eq!(
            (m["detectionId"].clone(), m["partial"].clone()),
            (json!("1-a-1"), json!(false))
        );
    }

    #[test]
    fn missing_and_failed_answers_make_it_partial() {
        let m = merged(&[outcome(41, RiskLevel::Medium, false)], 2);
        assert_eq!(m["partial"], true);
        assert_eq!(m["maxRiskLevel"], "low");
        assert!(m["llmModel"].is_null() && m["llmRawText"].is_null());
        assert_eq!(merged(&[], 1)["partial"], true);
    }
}
