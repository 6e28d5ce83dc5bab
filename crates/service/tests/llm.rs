//! The LLM client against a fake OpenAI-compatible server on loopback: answers in both content
//! shapes, retries with backoff for rate limits and server errors, no retry for a bad key,
//! timeouts, and answers that are not JSON; the API-key pool's failover, cooldown, disabled keys
//! and limits under a burst.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use llm::client::{LlmClient, LlmError};
use llm::keys::{ApiKey, KeyPoolConfig, KeySpec, RiskThresholds};
use llm::parse::parse_answer;
use llm::pool::KeyPool;
use llm::scheduler::KeyState;
use serde_json::json;
use support::fake_llm::{FakeLlm, Reply};

const ANSWER: &str = r#"```json
{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "car too close", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["tailgating"], "dangerObjectCount": 2, "triggerObjectIds": [3, 4]}]}
```"#;

fn client(llm: &FakeLlm, timeout: Duration, retries: u32) -> LlmClient {
    LlmClient::new(&llm.base_url(), ApiKey::new("sk-test"), timeout, retries).unwrap()
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
        ApiKey::new("k"),
        Duration::from_secs(2),
        0,
    )
    .unwrap();
    let err = c.complete(&body()).await.unwrap_err();
    assert!(matches!(err, LlmError::Connect(_)), "{err}");
}

fn pool_of(llm: &FakeLlm, keys: &[(&str, u32, f64)], retries: u32) -> KeyPool {
    let config = KeyPoolConfig {
        keys: keys
            .iter()
            .map(|&(id, priority, qps)| KeySpec {
                id: id.into(),
                api_key: ApiKey::new(format!("sk-{id}")),
                priority,
                qps_limit: qps,
                rpm_limit: None,
                max_in_flight: 10,
            })
            .collect(),
        qps_limit: None,
    };
    KeyPool::new(&llm.base_url(), &config, Duration::from_secs(5), retries).unwrap()
}

#[tokio::test]
async fn a_throttled_key_cools_down_and_the_request_fails_over_to_another() {
    let llm = FakeLlm::start(vec![Reply::text(ANSWER)]).await;
    llm.script_key("sk-a", vec![Reply::throttled(), Reply::text(ANSWER)]);
    let pool = pool_of(&llm, &[("a", 1, 50.0), ("b", 2, 50.0)], 2);
    let done = pool.complete(&body()).await.unwrap();
    assert_eq!(
        (done.key_id.as_str(), done.attempts, done.tokens),
        ("b", 2, 1050)
    );
    let second = pool.complete(&body()).await.unwrap();
    assert_eq!(second.key_id, "b", "a is still cooling down");
    let who: Vec<String> = llm
        .calls()
        .iter()
        .map(|c| c.authorization.clone())
        .collect();
    assert_eq!(who, ["Bearer sk-a", "Bearer sk-b", "Bearer sk-b"]);
    let snap = pool.snapshot();
    assert_eq!(snap[0].state, KeyState::Cooling);
    assert!((9.0..=10.0).contains(&snap[0].cooldown_seconds), "{snap:?}");
    assert_eq!((snap[0].failures, snap[1].successes), (1, 2));
}

#[tokio::test]
async fn a_refused_key_is_disabled_and_an_empty_pool_says_so() {
    let refused = Reply::Status(
        401,
        r#"{"code":"InvalidApiKey","message":"Invalid API-key provided."}"#.into(),
    );
    let llm = FakeLlm::start(vec![Reply::text(ANSWER)]).await;
    llm.script_key("sk-a", vec![refused.clone()]);
    let pool = pool_of(&llm, &[("a", 1, 50.0), ("b", 2, 50.0)], 2);
    let err = pool.complete(&body()).await.unwrap_err();
    assert!(matches!(err, LlmError::Status { status: 401, .. }), "{err}");
    assert_eq!(llm.calls().len(), 1, "a refused key is not retried");
    for _ in 0..3 {
        assert_eq!(pool.complete(&body()).await.unwrap().key_id, "b");
    }
    assert_eq!(pool.snapshot()[0].state, KeyState::Disabled);

    let llm = FakeLlm::start(vec![refused]).await;
    let pool = pool_of(&llm, &[("a", 1, 50.0)], 2);
    assert!(pool.complete(&body()).await.is_err());
    let started = std::time::Instant::now();
    let err = pool.complete(&body()).await.unwrap_err();
    assert!(matches!(err, LlmError::NoKey(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "no wait for a dead pool"
    );
    let counts = pool.stats.by_status();
    assert_eq!((counts["rejected"], counts["no_key"]), (1, 1));
}

#[tokio::test]
async fn a_burst_never_takes_a_key_over_its_limit() {
    let llm = FakeLlm::start(vec![Reply::Text(ANSWER.into(), Duration::from_millis(300))]).await;
    let pool = Arc::new(pool_of(&llm, &[("a", 1, 4.0), ("b", 1, 2.0)], 0));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.complete(&body()).await.map(|d| d.key_id) })
        })
        .collect();
    let mut used = Vec::new();
    for t in tasks {
        used.push(t.await.unwrap().unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    // 24 requests at 6 per second: about 4 s, not much more.
    assert!((3.5..6.0).contains(&elapsed), "{elapsed}");
    for (key, limit) in [("Bearer sk-a", 4), ("Bearer sk-b", 2)] {
        let at: Vec<_> = llm
            .calls()
            .iter()
            .filter(|c| c.authorization == key)
            .map(|c| c.at)
            .collect();
        for (i, t) in at.iter().enumerate() {
            let window = at[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(window <= limit, "{key}: {window} requests in one second");
        }
    }
    let a = used.iter().filter(|k| *k == "a").count();
    assert!((14..=17).contains(&a), "a has twice b's limit: {a} of 24");
    let waiting = pool.stats.waiting();
    assert_eq!((waiting, pool.stats.in_flight()), (0, 0));
}
