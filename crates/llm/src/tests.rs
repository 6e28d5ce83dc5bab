//! Tests of the request builder on a hand-made scene.

use vision::scene::rules::{RuleHit, RuleKind};
use vision::scene::{Alert, Group, Motion, RiskLevel, SceneFrame};
use vision::{BBox, Detection};

use super::prompt::*;
use imaging::{GroupCrop, RgbFrame, crop_jpeg, decode_rgb};

fn det(label: &str, x: f32) -> Detection {
    Detection {
        label: label.into(),
        class_id: usize::from(label != "person") * 2,
        confidence: 0.8,
        bbox: BBox::new(x, 100.0, x + 50.0, 150.0),
    }
}

fn group(index: usize, id: u64, members: Vec<usize>, level: RiskLevel) -> Group {
    Group {
        index,
        id,
        track_ids: members.iter().map(|&m| m as u64 + 1).collect(),
        members,
        bbox: BBox::new(0.0, 100.0, 400.0, 150.0),
        crop: BBox::new(0.0, 90.0, 410.0, 160.0),
        classes: vec!["car".into()],
        average_confidence: 0.8,
        level,
    }
}

/// Six groups of two; group id 5 has a high tailgating alert, id 3 is the largest.
fn scene() -> (Vec<Detection>, SceneFrame) {
    let dets: Vec<Detection> = (0..14)
        .map(|i| det(if i == 1 { "person" } else { "car" }, 60.0 * i as f32))
        .collect();
    let mut groups: Vec<Group> = (0..6)
        .map(|g| group(g + 1, g as u64 + 1, vec![2 * g, 2 * g + 1], RiskLevel::None))
        .collect();
    groups[2].members.extend([12, 13]);
    groups[4].level = RiskLevel::High;
    let alert = Alert {
        hit: RuleHit {
            kind: RuleKind::Tailgating,
            level: RiskLevel::High,
            confidence: 0.9,
            track_ids: vec![9, 10],
            description: "car #9 follows car #10 0.3 s behind".into(),
            measures: vec![("headway_s", 0.3)],
        },
        started_at: 0.0,
        stale: false,
        group: Some((5, 5)),
    };
    let mut motion = vec![None; 14];
    motion[8] = Some(Motion {
        velocity: (150.0, 0.0),
        speed: 3.0,
        heading_degrees: 0.0,
    });
    motion[9] = Some(Motion {
        velocity: (0.0, 1.0),
        speed: 0.02,
        heading_degrees: 90.0,
    });
    let scene = SceneFrame {
        track_ids: (0..14).map(|i| Some(i as u64 + 1)).collect(),
        motion,
        groups,
        alerts: vec![alert],
        max_level: RiskLevel::High,
        ..Default::default()
    };
    (dets, scene)
}

#[test]
fn flagged_groups_go_first_then_the_largest_at_most_four() {
    let (_, scene) = scene();
    assert_eq!(select_groups(&scene), vec![4, 2, 0, 1]);
}

#[test]
fn a_group_summary_carries_the_tracker_and_the_rules() {
    let (dets, scene) = scene();
    let text = group_summary(1, &scene.groups[4], &dets, &scene);
    assert!(
        text.starts_with("Group 1 (id 5): 2 objects (2 car)"),
        "{text}"
    );
    assert!(
        text.contains("Closest pair 60 px apart (1.2 box heights)"),
        "{text}"
    );
    assert!(
        text.contains("car #9: moving 3.0 heights/s heading 0 deg"),
        "{text}"
    );
    assert!(text.contains("car #10: standing still"), "{text}");
    assert!(
        text.contains("Rules fired: tailgating (high): car #9 follows car #10"),
        "{text}"
    );
    let text = group_summary(2, &scene.groups[0], &dets, &scene);
    assert!(
        text.contains("(1 car, 1 person)") && text.contains("motion unknown"),
        "{text}"
    );
    assert!(text.ends_with("No rule fired."), "{text}");
}

#[test]
fn a_calibrated_group_summary_speaks_in_km_h_lanes_and_measures() {
    let (dets, mut scene) = scene();
    scene.places = vec![vision::scene::Place::default(); 14];
    scene.places[8] = vision::scene::Place {
        ground: Some([3.0, 20.0]),
        speed_kmh: Some(52.4),
        lane: Some("nb-1".into()),
        zone: Some("crossing".into()),
        excluded: false,
    };
    let text = group_summary(1, &scene.groups[4], &dets, &scene);
    assert!(
        text.contains("car #9: 52 km/h heading 0 deg, lane nb-1, in zone crossing, confidence"),
        "{text}"
    );
    assert!(
        text.contains("car #10: standing still, confidence"),
        "{text}"
    );
    assert!(text.contains("0.3 s behind [headway_s 0.30]"), "{text}");
}

#[test]
fn an_image_over_the_token_budget_is_scaled_down() {
    let frame = RgbFrame {
        width: 1280,
        height: 1280,
        data: vec![90; 1280 * 1280 * 3],
    };
    let crop = crop_jpeg(&frame, BBox::new(0.0, 0.0, 1280.0, 1280.0))
        .unwrap()
        .unwrap();
    // 1280 tokens of 28x28 px: 1,003,520 px, so 1001 x 1001.
    let fitted = decode_rgb(&fit_image(&crop, 1280 * PIXELS_PER_TOKEN).unwrap()).unwrap();
    assert_eq!((fitted.width, fitted.height), (1001, 1001));
    let small = GroupCrop {
        jpeg: crop.jpeg.clone(),
        width: 1280,
        height: 1280,
    };
    assert_eq!(
        fit_image(&small, 2_000_000).unwrap(),
        crop.jpeg,
        "under budget: unchanged"
    );
}

#[test]
fn the_request_has_the_instructions_the_texts_and_four_images() {
    let (dets, scene) = scene();
    let frame = RgbFrame {
        width: 640,
        height: 360,
        data: vec![128; 640 * 360 * 3],
    };
    let crops: Vec<Option<GroupCrop>> = scene
        .groups
        .iter()
        .map(|g| crop_jpeg(&frame, g.crop).unwrap())
        .collect();
    let cfg = PromptConfig {
        model: "qwen-vl-plus".into(),
        max_image_tokens: 1280,
        max_answer_tokens: 800,
    };
    let r = build_request(&cfg, &dets, &scene, &crops).unwrap().unwrap();
    assert_eq!(r.group_ids, vec![5, 3, 1, 2]);
    let body = &r.body;
    assert_eq!(body["model"], "qwen-vl-plus");
    assert_eq!(body["messages"][0]["role"], "system");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("When unsure, choose the lower level")
            && system.contains("\"triggerObjectIds\"")
    );
    let content = body["messages"][1]["content"].as_array().unwrap();
    assert_eq!(content.len(), 5);
    let text = content[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("4 group image(s) follow, in order. The rules flagged danger"),
        "{text}"
    );
    assert!(
        text.contains("Group 1 (id 5): 2 objects") && text.contains("Group 4 (id 2): 2 objects"),
        "{text}"
    );
    for part in &content[1..] {
        assert_eq!(part["type"], "image_url");
        assert!(
            part["image_url"]["url"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,/9j/")
        );
    }
    // No group, no request.
    let empty = SceneFrame::default();
    assert!(build_request(&cfg, &[], &empty, &[]).unwrap().is_none());
}

/// Scripted answers for the advisor: each call takes `latency` of (paused) time and answers
/// with the next script entry (`None`: a failed call).
#[derive(Debug)]
struct Scripted {
    latency: std::time::Duration,
    script: std::sync::Mutex<std::collections::VecDeque<Option<&'static str>>>,
    calls: std::sync::atomic::AtomicU32,
}

impl crate::client::Completer for Scripted {
    fn complete<'a>(
        &'a self,
        _body: &'a serde_json::Value,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<crate::client::Completion, crate::client::LlmError>,
                > + Send
                + 'a,
        >,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front().flatten();
        Box::pin(async move {
            tokio::time::sleep(self.latency).await;
            match next {
                Some(text) => Ok(crate::client::Completion {
                    text: text.into(),
                    model: "fake-vl".into(),
                    latency: self.latency,
                    attempts: 1,
                    tokens: 0,
                    key_id: String::new(),
                }),
                None => Err(crate::client::LlmError::Timeout),
            }
        })
    }

    fn record(&self, _outcome: &'static str) {}
}

const HIGH_ON_GROUP_1: &str = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "too close", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["tailgating"], "dangerObjectCount": 2, "triggerObjectIds": [9, 10]}]}"#;

/// An advisor on the paused clock with a 3 s cooldown and a 3 s hold, answering after 1 s.
fn advisor(script: Vec<Option<&'static str>>) -> (crate::advisor::Advisor, Arc<Scripted>) {
    let completer = Arc::new(Scripted {
        latency: std::time::Duration::from_secs(1),
        script: std::sync::Mutex::new(script.into()),
        calls: Default::default(),
    });
    let link = crate::advisor::AdvisorLink {
        completer: Arc::clone(&completer) as Arc<dyn crate::client::Completer>,
        clock: Arc::new(retry::TokioClock),
        prompt: PromptConfig {
            model: "fake-vl".into(),
            max_image_tokens: 64,
            max_answer_tokens: 100,
        },
        thresholds: crate::keys::RiskThresholds {
            low: 0.45,
            medium: 0.65,
            high: 0.8,
        },
        cooldown: std::time::Duration::from_secs(3),
        hold: std::time::Duration::from_secs(3),
        runtime: tokio::runtime::Handle::current(),
        tasks: tokio_util::task::TaskTracker::new(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    (crate::advisor::Advisor::new(Arc::new(link)), completer)
}

use std::sync::Arc;

/// The scene's frame and crops, offered to `a`.
fn offer(a: &crate::advisor::Advisor) {
    let (dets, scene) = scene();
    let frame = RgbFrame {
        width: 640,
        height: 200,
        data: vec![90; 640 * 200 * 3],
    };
    let crops: Vec<Option<GroupCrop>> = scene
        .groups
        .iter()
        .map(|g| crop_jpeg(&frame, g.crop).unwrap())
        .collect();
    a.offer(&dets, &scene, &crops, chrono::Utc::now());
}

async fn wait(seconds: f64) {
    tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn the_advisor_keeps_its_cooldown_and_shows_an_answer_for_the_hold() {
    let (a, fake) = advisor(vec![Some(HIGH_ON_GROUP_1), Some(HIGH_ON_GROUP_1)]);
    offer(&a); // t = 0: sent
    assert_eq!(a.counters().requests, 1);
    assert!(a.current().is_none(), "no answer before it arrives");
    wait(0.5).await;
    offer(&a); // in flight: not sent
    wait(0.6).await; // t = 1.1: answered at t = 1
    let (verdict, fresh) = a.current().expect("the answer");
    assert!(fresh);
    assert_eq!(verdict.group_ids[0], 5, "the flagged group went first");
    assert_eq!(
        a.current().map(|(_, f)| f),
        Some(false),
        "then shown as stale"
    );
    offer(&a); // t = 1.1: cooldown (until t = 3)
    assert_eq!(a.counters().requests, 1);
    wait(2.0).await; // t = 3.1
    offer(&a); // sent
    assert_eq!(a.counters().requests, 2);
    wait(1.1).await; // t = 4.2: the second answer arrived at t = 4.1
    assert_eq!(a.current().map(|(_, f)| f), Some(true));
    wait(3.5).await; // past the hold
    assert!(a.current().is_none(), "the hold is over");
    assert_eq!(fake.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(a.counters().answers, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_starts_the_cooldown_too() {
    let (a, fake) = advisor(vec![None, Some("not json at all")]);
    offer(&a); // t = 0: fails at t = 1
    wait(1.5).await;
    assert_eq!(a.counters().failures, 1);
    offer(&a); // t = 1.5: still cooling down (until t = 3)
    assert_eq!(fake.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    wait(1.6).await; // t = 3.1
    offer(&a);
    wait(1.1).await;
    assert_eq!(fake.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(a.counters().parse_errors, 1);
    assert!(a.current().is_none(), "an unreadable answer is not shown");
}

#[test]
fn annotate_puts_each_finding_on_the_group_it_names() {
    use crate::advisor::{Verdict, annotate};
    use crate::parse::{Answer, Finding};
    use protocol::detection::{AlertSource, TrafficGroup};
    let group = |index: usize, id: u64| TrafficGroup {
        group_index: index,
        group_id: id,
        object_count: 2,
        bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
        classes: vec!["car".into()],
        average_confidence: 0.8,
        risk_level: RiskLevel::Low,
        member_track_ids: vec![1, 2],
    };
    let finding = |k: usize, level: RiskLevel| Finding {
        group_index: k,
        description: format!("finding {k}"),
        level,
        confidence: 0.9,
        risk_types: vec!["tailgating".into()],
        danger_object_count: 2,
        trigger_object_ids: vec![1],
        rule_verdict: None,
    };
    let verdict = Verdict {
        answer: Answer {
            has_dangerous_driving: true,
            max_risk_level: RiskLevel::High,
            results: vec![
                finding(1, RiskLevel::High),
                finding(2, RiskLevel::None),
                finding(3, RiskLevel::Medium),
            ],
        },
        // The request's groups 1, 2, 3 were ids 41, 40 and 99 (99 has left the frame).
        group_ids: vec![41, 40, 99],
        raw_text: "{...}".into(),
        model: "qwen-vl-plus".into(),
        latency: std::time::Duration::from_millis(1300),
        asked_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    };
    let mut result = protocol::DetectionResult {
        traffic_groups: vec![group(1, 40), group(2, 41)],
        max_risk_level: RiskLevel::Low,
        ..Default::default()
    };
    let attached = annotate(&mut result, &verdict, true);
    assert_eq!(attached.len(), 2, "a finding of level none is not an alert");
    assert_eq!(
        result.traffic_groups[1].risk_level,
        RiskLevel::High,
        "id 41 raised"
    );
    assert_eq!(
        result.traffic_groups[0].risk_level,
        RiskLevel::Low,
        "id 40 untouched"
    );
    let alerts = &result.dangerous_driving_results;
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        (alerts[0].group_id, alerts[0].group_index, alerts[0].source),
        (Some(41), Some(2), AlertSource::Llm)
    );
    assert_eq!(
        (alerts[1].group_id, alerts[1].group_index),
        (Some(99), None)
    );
    assert_eq!(alerts[0].kind, "tailgating");
    assert_eq!(alerts[0].started_at, "2023-11-14T22:13:20.000Z");
    assert!(!alerts[0].is_stale);
    assert_eq!(result.max_risk_level, RiskLevel::High);
    assert!(result.has_dangerous_driving);
    assert_eq!(result.llm_latency, Some(1.3));
    assert_eq!(result.llm_model.as_deref(), Some("qwen-vl-plus"));
    // Shown again on a later frame: the same alerts, stale.
    let mut later = protocol::DetectionResult::default();
    annotate(&mut later, &verdict, false);
    assert!(later.dangerous_driving_results.iter().all(|a| a.is_stale));
}

#[test]
fn a_refuted_rule_alert_stays_and_says_so() {
    use crate::advisor::{Verdict, annotate};
    use crate::parse::{Answer, Finding};
    use protocol::detection::{AlertSource, DangerAlert};
    let rule = |group_id: u64| DangerAlert {
        kind: "tailgating".into(),
        description: "car #1 follows car #2 0.6 s behind".into(),
        risk_level: RiskLevel::Medium,
        confidence: 0.7,
        group_index: Some(1),
        group_id: Some(group_id),
        risk_types: vec!["tailgating".into()],
        trigger_object_ids: vec![1, 2],
        source: AlertSource::Rules,
        started_at: String::new(),
        is_stale: false,
        measures: Default::default(),
        llm_verdict: None,
    };
    let said = |k: usize, verdict: Option<&'static str>| Finding {
        group_index: k,
        description: "two cars queueing at a light".into(),
        level: RiskLevel::None,
        confidence: 0.8,
        risk_types: vec![],
        danger_object_count: 0,
        trigger_object_ids: vec![],
        rule_verdict: verdict,
    };
    let verdict = Verdict {
        answer: Answer {
            has_dangerous_driving: false,
            max_risk_level: RiskLevel::None,
            results: vec![said(1, Some("refuted")), said(2, None)],
        },
        group_ids: vec![40, 41],
        raw_text: "{...}".into(),
        model: "qwen-vl-plus".into(),
        latency: std::time::Duration::from_millis(900),
        asked_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    };
    let mut result = protocol::DetectionResult {
        dangerous_driving_results: vec![rule(40), rule(41)],
        max_risk_level: RiskLevel::Medium,
        ..Default::default()
    };
    let attached = annotate(&mut result, &verdict, true);
    assert!(attached.is_empty(), "level none: no LLM alert");
    let alerts = &result.dangerous_driving_results;
    assert_eq!(alerts.len(), 2, "nothing dropped");
    assert_eq!(alerts[0].llm_verdict.as_deref(), Some("refuted"));
    assert_eq!(
        alerts[1].llm_verdict, None,
        "the model said nothing of group 41"
    );
    let json = serde_json::to_value(&alerts[0]).unwrap();
    assert_eq!(json["llmVerdict"], "refuted");
}
