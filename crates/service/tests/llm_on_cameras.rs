//! Black-box tests of the LLM on a live camera: `traffic-algo serve` with a real RTSP camera on
//! loopback and the fake OpenAI-compatible server (`support/fake_llm.rs`). A slow answer never
//! delays results and only one request per camera is in flight; the answer then appears on the
//! group the request asked about, and `/api/cameras` and `/metrics` count it; refused and
//! unreadable answers wait out the camera's cooldown like successes.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Instant;

use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Reply};
use support::live_camera::LiveCamera;
use support::{SECS, http};

/// The id of the request's group 1, from the summary text ("Group 1 (id N): ...").
fn first_group_id(body: &Value) -> u64 {
    let text = body["messages"][1]["content"][0]["text"].as_str().unwrap();
    let start = text.find("Group 1 (id ").unwrap() + "Group 1 (id ".len();
    text[start..].split(')').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_answers_attach_to_their_group_and_a_slow_llm_never_delays_results() {
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "people step into the road", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["pedestrian_risk"], "dangerObjectCount": 2, "triggerObjectIds": [1]}]}"#;
    // The first call takes 10 s; later ones answer at once.
    let llm = FakeLlm::start(vec![
        Reply::Text(answer.into(), SECS(10)),
        Reply::text(answer),
    ])
    .await;
    let service = llm.service(
        "sk-test",
        &[
            ("ALGO_LLM_COOLDOWN_SECONDS", "1"),
            ("ALGO_ALERT_PAUSE_SECONDS", "0"),
        ],
    );
    let mut cam = LiveCamera::start(50, service).await;
    let (c, service) = (&mut cam.client, &cam.service);
    c.recv_state("online", SECS(15)).await;

    // While the first call hangs, results keep their pace and no second call goes out.
    let mut times = Vec::new();
    for _ in 0..4 {
        let r = c.recv_type("detection_result", SECS(10)).await;
        times.push(Instant::now());
        assert!(r["data"]["llmModel"].is_null());
    }
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g < 2.6),
        "results delayed while the LLM is slow: {gaps:?}"
    );
    let calls = llm.calls();
    assert_eq!(calls.len(), 1, "one request in flight per camera");
    let asked = first_group_id(&calls[0].body);
    assert_eq!(calls[0].authorization, "Bearer sk-test");

    // The answer shows up on the group the request called group 1.
    let deadline = Instant::now() + SECS(30);
    let found = loop {
        assert!(Instant::now() < deadline, "no LLM alert within 30 s");
        let r = c.recv_type("detection_result", SECS(15)).await;
        let d = r["data"].clone();
        if let Some(a) = d["dangerousDrivingResults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["source"] == "llm")
        {
            break (d.clone(), a.clone());
        }
    };
    let (d, a) = found;
    assert_eq!(a["groupId"], asked);
    assert_eq!(
        (a["riskLevel"].clone(), a["type"].clone()),
        (json!("high"), json!("pedestrian_risk"))
    );
    assert_eq!(d["llmModel"], "qwen-vl-plus");
    assert!(d["llmLatency"].as_f64().unwrap() >= 9.0);
    assert!(
        d["llmRawText"]
            .as_str()
            .unwrap()
            .contains("people step into the road")
    );
    assert_eq!(d["maxRiskLevel"], "high");
    assert_eq!(d["hasDangerousDriving"], true);
    let cams = service.cameras();
    assert!(cams["data"][0]["llm"]["answers"].as_u64().unwrap() >= 1);

    // The metrics say the same.
    let accept = [(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )];
    let (status, head, text) = http(&service.addr, "GET", "/metrics", &accept);
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(text.ends_with("# EOF\n"));
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{line}` in\n{text}"))
    };
    assert!(value("llm_requests_total{status=\"success\"}") >= 1.0);
    assert_eq!(value("llm_requests_total{status=\"parse_error\"}"), 0.0);
    assert!(value("llm_latency_seconds_count") >= 1.0);
    assert!(value("llm_latency_seconds_bucket{le=\"10.0\"}") < value("llm_latency_seconds_count"));
    assert!(value("llm_token_usage_total") >= 1050.0);
    assert_eq!(value("api_key_pool_size"), 1.0);
    assert_eq!(value("api_key_status{key_id=\"default\"}"), 1.0);
    assert!(value("api_key_total_calls{key_id=\"default\"}") >= 1.0);
    assert_eq!(value("api_key_success_rate{key_id=\"default\"}"), 1.0);
    assert!(!text.contains("sk-test"), "no secret in the metrics");
}

#[tokio::test]
async fn failed_llm_calls_start_the_camera_cooldown_too_and_results_keep_flowing() {
    // Refused for content, then an answer that is not JSON: neither is the key's fault, both
    // must wait out the camera's cooldown before the next request.
    let llm = FakeLlm::start(vec![
        Reply::Status(
            400,
            r#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#.into(),
        ),
        Reply::text("I am not sure what to say."),
        Reply::Status(
            400,
            r#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#.into(),
        ),
    ])
    .await;
    let service = llm.service("sk-test", &[("ALGO_LLM_COOLDOWN_SECONDS", "4")]);
    let mut cam = LiveCamera::start(51, service).await;
    let (c, service) = (&mut cam.client, &cam.service);
    c.recv_state("online", SECS(15)).await;
    for _ in 0..8 {
        c.recv_type("detection_result", SECS(5)).await;
    }
    let calls = llm.calls();
    assert!(calls.len() >= 2, "{} calls in 8 results", calls.len());
    let gaps: Vec<f64> = calls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 3.9),
        "calls closer than the cooldown: {gaps:?}"
    );
    let cams = service.cameras();
    let counters = &cams["data"][0]["llm"];
    assert!(counters["failures"].as_u64().unwrap() >= 1, "{counters}");
    assert!(counters["parseErrors"].as_u64().unwrap() >= 1, "{counters}");
    assert_eq!(counters["answers"], 0);
    let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
    assert!(
        text.contains("llm_requests_total{status=\"parse_error\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("api_key_status{key_id=\"default\"} 1"),
        "content errors leave the key active: {text}"
    );
}
