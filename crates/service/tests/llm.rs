//! The LLM client against a fake OpenAI-compatible server on loopback: answers in both content
//! shapes, retries with backoff for rate limits and server errors, no retry for a bad key,
//! timeouts, and answers that are not JSON.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Duration;

use serde_json::json;
use service::config::{RiskThresholds, Secret};
use service::llm::client::{LlmClient, LlmError};
use service::llm::parse::parse_answer;
use support::fake_llm::{FakeLlm, Reply};

const ANSWER: &str = r#"```json
{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "car too close", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["tailgating"], "dangerObjectCount": 2, "triggerObjectIds": [3, 4]}]}
```"#;

fn client(llm: &FakeLlm, timeout: Duration, retries: u32) -> LlmClient {
    LlmClient::new(&llm.base_url(), Secret::new("sk-test"), timeout, retries).unwrap()
}

fn body() -> serde_json::Value {
    json!({"model": "qwen-vl-plus", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn answers_in_both_content_shapes_are_read() {
    let llm = FakeLlm::start(vec![
        Reply::text(ANSWER),
        Reply::Parts(vec![ANSWER[..40].into(), ANSWER[40..].into()]),
    ])
    .await;
    let c = client(&llm, Duration::from_secs(5), 0);
    let t = RiskThresholds {
        low: 0.45,
        medium: 0.65,
        high: 0.8,
    };
    for _ in 0..2 {
        let done = c.complete(&body()).await.unwrap();
        assert_eq!((done.model.as_str(), done.attempts), ("qwen-vl-plus", 1));
        let answer = parse_answer(&done.text, &t).unwrap();
        assert_eq!(answer.results[0].trigger_object_ids, vec![3, 4]);
    }
    let calls = llm.calls();
    assert_eq!(calls[0].authorization, "Bearer sk-test");
    assert_eq!(calls[0].body["model"], "qwen-vl-plus");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let llm = FakeLlm::start(vec![
        Reply::throttled(),
        Reply::Status(500, r#"{"code":"InternalError","message":"oops"}"#.into()),
        Reply::text(ANSWER),
    ])
    .await;
    let done = client(&llm, Duration::from_secs(5), 2)
        .complete(&body())
        .await
        .unwrap();
    assert_eq!(done.attempts, 3);
    let calls = llm.calls();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(480) && gaps[1] >= Duration::from_millis(980),
        "{gaps:?}"
    );

    // Out of retries: the last error comes back.
    let llm = FakeLlm::start(vec![Reply::throttled()]).await;
    let err = client(&llm, Duration::from_secs(5), 1)
        .complete(&body())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Status { status: 429, code, .. } if code == "Throttling.RateQuota"),
        "{err}"
    );
    assert_eq!(llm.calls().len(), 2);
}

#[tokio::test]
async fn a_bad_key_is_not_retried() {
    let llm = FakeLlm::start(vec![Reply::Status(
        401,
        r#"{"code":"InvalidApiKey","message":"Invalid API-key provided."}"#.into(),
    )])
    .await;
    let err = client(&llm, Duration::from_secs(5), 3)
        .complete(&body())
        .await
        .unwrap_err();
    assert!(!err.retryable(), "{err}");
    assert_eq!(llm.calls().len(), 1);
}

#[tokio::test]
async fn slow_and_malformed_answers_are_errors_not_hangs() {
    let llm = FakeLlm::start(vec![Reply::Text(ANSWER.into(), Duration::from_secs(5))]).await;
    let started = std::time::Instant::now();
    let err = client(&llm, Duration::from_millis(300), 0)
        .complete(&body())
        .await
        .unwrap_err();
    assert_eq!(err, LlmError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));

    let llm = FakeLlm::start(vec![Reply::Garbage]).await;
    let err = client(&llm, Duration::from_secs(5), 2)
        .complete(&body())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Response(_)), "{err}");
    assert_eq!(llm.calls().len(), 1, "a malformed body is not retried");

    let llm = FakeLlm::start(vec![Reply::text("Sorry, I cannot help with that.")]).await;
    let done = client(&llm, Duration::from_secs(5), 0)
        .complete(&body())
        .await
        .unwrap();
    let t = RiskThresholds {
        low: 0.45,
        medium: 0.65,
        high: 0.8,
    };
    assert!(parse_answer(&done.text, &t).is_err());
}

#[tokio::test]
async fn https_urls_go_through_the_tls_stack() {
    // Nothing listens on port 9 here: a clean connection error, not a panic for lack of TLS.
    let c = LlmClient::new(
        "https://127.0.0.1:9/v1",
        Secret::new("k"),
        Duration::from_secs(2),
        0,
    )
    .unwrap();
    let err = c.complete(&body()).await.unwrap_err();
    assert!(matches!(err, LlmError::Connect(_)), "{err}");
}
