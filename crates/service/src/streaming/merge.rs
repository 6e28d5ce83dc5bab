//! The merged result of one detection (pure): the frame's `detection_result` data with each LLM
//! answer attached to its group by `groupId`, as in standalone mode (`source: "llm"`, the
//! group's `riskLevel` raised, `maxRiskLevel` and `hasDangerousDriving` updated, `llmLatency`,
//! `llmModel`, `llmRawText`), plus `detectionId` and `partial` (some answers never came).

use serde_json::{Value, json};

use super::messages::{AssessmentOutcome, DetectionRecord};

const LEVELS: [&str; 4] = ["none", "low", "medium", "high"];

fn rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

/// Merges `outcomes` into `record`'s result; `expected` answers were asked for.
pub fn merge(record: &DetectionRecord, outcomes: &[AssessmentOutcome], expected: usize) -> Value {
    let mut data = record.result.clone();
    let mut alerts: Vec<Value> = data["dangerousDrivingResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut max = rank(data["maxRiskLevel"].as_str().unwrap_or("none"));
    let mut dangerous = data["hasDangerousDriving"].as_bool().unwrap_or(false);
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
        let level = rank(&f.risk_level);
        if level == 0 {
            continue;
        }
        let index = data["trafficGroups"].as_array_mut().and_then(|groups| {
            let g = groups
                .iter_mut()
                .find(|g| g["groupId"].as_u64() == Some(o.group_id))?;
            if rank(g["riskLevel"].as_str().unwrap_or("none")) < level {
                g["riskLevel"] = json!(f.risk_level);
            }
            g["groupIndex"].as_u64()
        });
        max = max.max(level);
        dangerous = true;
        alerts.push(json!({
            "type": f.risk_types.first().map_or("llm_assessment", String::as_str),
            "description": f.description,
            "riskLevel": f.risk_level,
            "confidence": f.confidence,
            "groupIndex": index,
            "groupId": o.group_id,
            "riskTypes": f.risk_types,
            "triggerObjectIds": f.trigger_object_ids,
            "source": "llm",
            "startedAt": data["timestamp"],
            "isStale": false,
        }));
    }
    data["dangerousDrivingResults"] = json!(alerts);
    data["maxRiskLevel"] = json!(LEVELS[max]);
    data["hasDangerousDriving"] = json!(dangerous);
    data["llmLatency"] = json!(latency);
    data["llmModel"] = json!(model);
    data["llmRawText"] = if texts.is_empty() {
        Value::Null
    } else {
        json!(texts.join("\n"))
    };
    data["detectionId"] = json!(record.detection_id);
    data["partial"] = json!(answered < expected);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::messages::FindingRecord;

    fn record() -> DetectionRecord {
        DetectionRecord {
            message_id: "det:1".into(),
            detection_id: "1-a-1".into(),
            camera_id: 1,
            instance_id: "a".into(),
            result: json!({
                "timestamp": "2026-11-28T10:00:00.000Z",
                "trafficGroups": [
                    {"groupIndex": 1, "groupId": 40, "riskLevel": "low"},
                    {"groupIndex": 2, "groupId": 41, "riskLevel": "none"}
                ],
                "dangerousDrivingResults": [{"type": "congestion", "source": "rules"}],
                "maxRiskLevel": "low",
                "hasDangerousDriving": false,
                "llmLatency": null
            }),
            groups: vec![],
        }
    }

    fn outcome(group: u64, level: &str, ok: bool) -> AssessmentOutcome {
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
                risk_level: level.into(),
                confidence: 0.9,
                risk_types: vec!["tailgating".into()],
                trigger_object_ids: vec![3],
            }),
            raw_text: format!("answer {group}"),
            model: "qwen-vl-plus".into(),
            latency_seconds: group as f64 / 10.0,
            error: (!ok).then(|| "timeout".into()),
        }
    }

    #[test]
    fn answers_land_on_their_groups() {
        let m = merge(
            &record(),
            &[outcome(41, "high", true), outcome(40, "none", true)],
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
        let m = merge(&record(), &[outcome(41, "medium", false)], 2);
        assert_eq!(m["partial"], true);
        assert_eq!(m["maxRiskLevel"], "low");
        assert!(m["llmModel"].is_null() && m["llmRawText"].is_null());
        assert_eq!(merge(&record(), &[], 1)["partial"], true);
    }
}
