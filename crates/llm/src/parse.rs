//! Lenient parsing of the model's answer. Models wrap JSON in code fences or prose, write
//! numbers and booleans as strings, give `riskTypes` as one string, and invent levels; none of
//! that may cost an alert or crash anything. What cannot be read at all is a [`ParseError`],
//! counted by the caller.
//!
//! Two layers: [`message_text`] takes the text out of an OpenAI-compatible chat-completions
//! response (DashScope's compatible mode gives `content` as a string, some servers as a list of
//! `{type: "text", text}` parts); [`parse_answer`] reads the SPEC 5 answer out of that text.

use serde_json::Value;
use vision::scene::RiskLevel;

use crate::keys::RiskThresholds;

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The response has no message text.
    #[error("no message content in the response")]
    NoContent,
    /// No JSON object in the text.
    #[error("no JSON object in the answer")]
    NoJson,
    /// A JSON object that does not hold the answer.
    #[error("answer JSON has no usable results: {0}")]
    Invalid(String),
}

/// One finding of the model about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The group, by its 1-based index in the request.
    pub group_index: usize,
    /// What the model saw.
    pub description: String,
    /// Its level (from the model, or from the confidence where the level is unusable).
    pub level: RiskLevel,
    /// Its confidence, 0 to 1.
    pub confidence: f32,
    /// Kinds of danger named.
    pub risk_types: Vec<String>,
    /// Objects involved, as counted by the model.
    pub danger_object_count: u32,
    /// Track ids the model names.
    pub trigger_object_ids: Vec<u64>,
    /// Whether the image confirms or refutes the rules that fired on the group
    /// (`confirmed`/`refuted`), when the model says.
    pub rule_verdict: Option<&'static str>,
}

/// The model's answer (SPEC section 5).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Whether the model saw dangerous driving.
    pub has_dangerous_driving: bool,
    /// Highest level.
    pub max_risk_level: RiskLevel,
    /// Per-group findings.
    pub results: Vec<Finding>,
}

/// The assistant text of a chat-completions response.
pub fn message_text(response: &Value) -> Result<String, ParseError> {
    let content = &response["choices"][0]["message"]["content"];
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    if text.trim().is_empty() {
        Err(ParseError::NoContent)
    } else {
        Ok(text)
    }
}

/// The first balanced `{...}` in `text` (strings and escapes respected).
fn json_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, ch) in text[start..].char_indices() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..=start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// A level by name, in English or Chinese; `None` for anything else.
pub fn level_named(name: &str) -> Option<RiskLevel> {
    match name.trim().to_lowercase().as_str() {
        "high" | "severe" | "critical" | "高" | "高风险" => Some(RiskLevel::High),
        "medium" | "moderate" | "mid" | "中" | "中风险" => Some(RiskLevel::Medium),
        "low" | "minor" | "低" | "低风险" => Some(RiskLevel::Low),
        "none" | "safe" | "no" | "无" | "无风险" => Some(RiskLevel::None),
        _ => None,
    }
}

/// The level a confidence maps to (SPEC 2 `llm.risk_threshold`).
pub fn level_for_confidence(confidence: f32, t: &RiskThresholds) -> RiskLevel {
    if confidence >= t.high {
        RiskLevel::High
    } else if confidence >= t.medium {
        RiskLevel::Medium
    } else if confidence >= t.low {
        RiskLevel::Low
    } else {
        RiskLevel::None
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok().map(|x: f64| {
            if s.trim().ends_with('%') {
                x / 100.0
            } else {
                x
            }
        }),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "1" | "是" => Some(true),
            "false" | "no" | "0" | "否" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Value::String(s) => s
            .split([',', ';', '，', '、'])
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn ids(v: &Value) -> Vec<u64> {
    let one = |x: &Value| {
        number(x)
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .map(|n| n as u64)
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        Value::String(_) => strings(v)
            .iter()
            .filter_map(|s| s.trim_start_matches('#').parse().ok())
            .collect(),
        other => one(other).into_iter().collect(),
    }
}

fn finding(v: &Value, position: usize, t: &RiskThresholds) -> Finding {
    let confidence = number(&v["confidence"]).map_or(0.0, |c| c.clamp(0.0, 1.0) as f32);
    let level = v["riskLevel"]
        .as_str()
        .and_then(level_named)
        .unwrap_or_else(|| level_for_confidence(confidence, t));
    Finding {
        group_index: number(&v["groupIndex"])
            .filter(|n| *n >= 1.0)
            .map_or(position + 1, |n| n as usize),
        description: v["description"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string(),
        level,
        confidence,
        risk_types: strings(&v["riskTypes"]),
        danger_object_count: number(&v["dangerObjectCount"]).map_or(0, |n| n.max(0.0) as u32),
        trigger_object_ids: ids(&v["triggerObjectIds"]),
        rule_verdict: v["ruleVerdict"].as_str().and_then(|s| {
            match s.trim().to_ascii_lowercase().as_str() {
                "confirmed" | "confirm" => Some("confirmed"),
                "refuted" | "refute" => Some("refuted"),
                _ => None,
            }
        }),
    }
}

/// Reads the SPEC 5 answer from the model's text: code fences and prose around the JSON are
/// skipped, strings stand in for numbers and booleans, an unusable level falls back to the
/// confidence `thresholds`, and missing summary fields are derived from the results.
pub fn parse_answer(text: &str, thresholds: &RiskThresholds) -> Result<Answer, ParseError> {
    let object = json_object(text).ok_or(ParseError::NoJson)?;
    let v: Value = serde_json::from_str(object).map_err(|e| ParseError::Invalid(e.to_string()))?;
    let results: Vec<Finding> = match &v["results"] {
        Value::Array(items) => items
            .iter()
            .filter(|i| i.is_object())
            .enumerate()
            .map(|(k, i)| finding(i, k, thresholds))
            .collect(),
        Value::Null if v.get("riskLevel").is_some() => vec![finding(&v, 0, thresholds)],
        Value::Null if v.get("hasDangerousDriving").is_some() => Vec::new(),
        other => return Err(ParseError::Invalid(format!("results is {other}"))),
    };
    let worst = results.iter().map(|f| f.level).max().unwrap_or_default();
    let max_risk_level = v["maxRiskLevel"]
        .as_str()
        .and_then(level_named)
        .unwrap_or(worst)
        .max(worst);
    let has_dangerous_driving =
        boolean(&v["hasDangerousDriving"]).unwrap_or(worst > RiskLevel::None);
    Ok(Answer {
        has_dangerous_driving,
        max_risk_level,
        results,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T: RiskThresholds = RiskThresholds {
        low: 0.45,
        medium: 0.65,
        high: 0.80,
    };

    /// The body DashScope's compatible mode returns (shape recorded from its documentation's
    /// example response), with `content` as given.
    fn dashscope(content: &Value) -> Value {
        json!({
            "choices": [{
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "index": 0,
                "logprobs": null
            }],
            "object": "chat.completion",
            "usage": {"prompt_tokens": 1270, "completion_tokens": 96, "total_tokens": 1366},
            "created": 1_735_120_033,
            "system_fingerprint": null,
            "model": "qwen-vl-plus",
            "id": "chatcmpl-0da38de9-8d21-9a6e-9ffd-8a6a9d4e1f5c"
        })
    }

    #[test]
    fn content_as_a_string_and_as_a_list_of_parts() {
        assert_eq!(
            message_text(&dashscope(&json!("{\"a\":1}"))).unwrap(),
            "{\"a\":1}"
        );
        let parts =
            json!([{"type": "text", "text": "{\"hasDangerousDriving\":"}, {"text": " false}"}]);
        assert_eq!(
            message_text(&dashscope(&parts)).unwrap(),
            "{\"hasDangerousDriving\": false}"
        );
        assert_eq!(
            message_text(&dashscope(&json!(null))),
            Err(ParseError::NoContent)
        );
        assert_eq!(
            message_text(&json!({"error": {"code": "x"}})),
            Err(ParseError::NoContent)
        );
    }

    #[test]
    fn a_clean_answer() {
        let text = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [
            {"groupIndex": 2, "description": "car cuts in front of a bus", "riskLevel": "high",
             "confidence": 0.86, "riskTypes": ["cut_in", "tailgating"], "dangerObjectCount": 2,
             "triggerObjectIds": [12, 15], "ruleVerdict": "Confirmed"}]}"#;
        let a = parse_answer(text, &T).unwrap();
        assert!(a.has_dangerous_driving);
        assert_eq!(a.max_risk_level, RiskLevel::High);
        assert_eq!(
            a.results,
            vec![Finding {
                group_index: 2,
                description: "car cuts in front of a bus".into(),
                level: RiskLevel::High,
                confidence: 0.86,
                risk_types: vec!["cut_in".into(), "tailgating".into()],
                danger_object_count: 2,
                trigger_object_ids: vec![12, 15],
                rule_verdict: Some("confirmed"),
            }]
        );
    }

    #[test]
    fn fences_prose_strings_and_bad_levels_are_tolerated() {
        let text = "Here is my analysis:\n```json\n{\"hasDangerousDriving\": \"true\", \"results\": [\
            {\"groupIndex\": \"1\", \"description\": \"a person {crossing}\", \"riskLevel\": \"orange\",\
             \"confidence\": \"0.7\", \"riskTypes\": \"pedestrian, speeding\", \"dangerObjectCount\": \"2\",\
             \"triggerObjectIds\": \"#3, 4\"}]}\n```\nLet me know if you need more.";
        let a = parse_answer(text, &T).unwrap();
        let f = &a.results[0];
        assert_eq!(
            (f.group_index, f.level, f.confidence),
            (1, RiskLevel::Medium, 0.7)
        );
        assert_eq!(f.description, "a person {crossing}");
        assert_eq!(
            f.risk_types,
            vec!["pedestrian".to_string(), "speeding".into()]
        );
        assert_eq!(
            (f.danger_object_count, f.trigger_object_ids.clone()),
            (2, vec![3, 4])
        );
        assert_eq!(
            a.max_risk_level,
            RiskLevel::Medium,
            "derived from the results"
        );
        assert!(a.has_dangerous_driving);
        // Chinese levels; a missing level with a high confidence; percentages.
        let a = parse_answer(
            r#"{"results":[{"riskLevel":"高","confidence":0.5},{"confidence":"85%"}]}"#,
            &T,
        )
        .unwrap();
        assert_eq!(a.results[0].level, RiskLevel::High);
        assert_eq!(
            (a.results[1].level, a.results[1].group_index),
            (RiskLevel::High, 2)
        );
        // Nothing dangerous.
        let a = parse_answer(
            r#"{"hasDangerousDriving": false, "maxRiskLevel": "none", "results": []}"#,
            &T,
        )
        .unwrap();
        assert_eq!(
            (a.has_dangerous_driving, a.max_risk_level, a.results.len()),
            (false, RiskLevel::None, 0)
        );
    }

    #[test]
    fn unreadable_answers_are_errors() {
        assert_eq!(
            parse_answer("I cannot see any vehicles.", &T),
            Err(ParseError::NoJson)
        );
        assert!(matches!(
            parse_answer("{\"results\": [1, 2", &T),
            Err(ParseError::NoJson)
        ));
        assert!(matches!(
            parse_answer("{\"results\": {\"a\": 1}}", &T),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_answer("{'results': []}", &T),
            Err(ParseError::Invalid(_))
        ));
    }
}
