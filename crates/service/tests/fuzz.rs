//! Property-based fuzzing (proptest) of the two parsers that read what strangers send: the
//! WebSocket message parser and the LLM answer parser (with the response envelope around it).
//! Inputs are arbitrary text, random JSON trees shaped like the real messages, and byte-level
//! mutations of valid messages. Every input must give a value or an error, never a panic. Each
//! parser is fuzzed for `FUZZ_SECONDS` (60 s by default; CI runs that; the LLM's response
//! envelopes get half as long again), and the test prints how many inputs it tried.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

use std::time::{Duration, Instant};

use llm::parse::{message_text, parse_answer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use protocol::client as protocol;
use serde_json::{Value, json};
use service::config::RiskThresholds;

/// How long each parser is fuzzed.
fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    Duration::from_secs_f64(secs)
}

/// A JSON tree of bounded depth with keys that the parsers look for.
fn json_tree(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(keys).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Byte-level edits of `seed`: replace, insert and delete at random places.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.into_bytes();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// Runs `check` on inputs from `strategy` until the budget is spent; returns how many.
fn fuzz<S: Strategy>(strategy: S, budget: Duration, check: impl Fn(S::Value)) -> u64
where
    S::Value: std::fmt::Debug,
{
    let started = Instant::now();
    let tried = std::cell::Cell::new(0u64);
    let mut round = 0u64;
    while started.elapsed() < budget {
        // A fresh runner (and seed) per round of 2,000 cases.
        round += 1;
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 2000,
                failure_persistence: None,
                ..Config::default()
            },
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &seed(round),
            ),
        );
        runner
            .run(&strategy, |input| {
                tried.set(tried.get() + 1);
                check(input);
                Ok(())
            })
            .unwrap();
    }
    tried.get()
}

/// A 32-byte seed for round `n` (fixed, so a failure can be replayed).
fn seed(n: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s[8..16].copy_from_slice(&0x9e37_79b9_7f4a_7c15u64.to_le_bytes());
    s
}

#[test]
fn the_websocket_parser_never_panics() {
    const KEYS: &[&str] = &[
        "type",
        "data",
        "cameraId",
        "rtspUrl",
        "ping",
        "start_stream",
        "stop_stream",
        "check_camera",
        "subscribe",
        "unsubscribe",
    ];
    let seeds: Vec<String> = [
        json!({"type": "ping", "data": {}}),
        json!({"type": "start_stream", "data": {"cameraId": 1, "rtspUrl": "rtsp://10.0.0.1/s"}}),
        json!({"type": "check_camera", "data": {"cameraId": "7", "rtspUrl": "rtsp://a:b@h/"}}),
        json!({"type": "subscribe", "data": {"cameraId": 3}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    let inputs = prop_oneof![
        ".{0,200}",
        json_tree(KEYS).prop_map(|v| v.to_string()),
        mutated(seeds),
    ];
    let n = fuzz(inputs, budget(), |text: String| {
        let _ = protocol::parse(&text);
    });
    eprintln!("WebSocket parser: {n} inputs in {:?}, no panic", budget());
    assert!(n >= 2000);
}

#[test]
fn the_llm_answer_parser_never_panics() {
    const KEYS: &[&str] = &[
        "choices",
        "message",
        "content",
        "text",
        "type",
        "results",
        "hasDangerousDriving",
        "maxRiskLevel",
        "groupIndex",
        "riskLevel",
        "confidence",
        "riskTypes",
        "dangerObjectCount",
        "triggerObjectIds",
        "description",
        "high",
        "中风险",
        "0.9",
    ];
    let thresholds = RiskThresholds {
        low: 0.3,
        medium: 0.6,
        high: 0.85,
    };
    let answer = json!({"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [
        {"groupIndex": 1, "description": "x", "riskLevel": "high", "confidence": 0.9,
         "riskTypes": ["cut_in"], "dangerObjectCount": 2, "triggerObjectIds": [4, 5]}]})
    .to_string();
    let seeds = vec![
        answer.clone(),
        format!("```json\n{answer}\n```"),
        format!("Here you are: {answer} Hope it helps."),
    ];
    let inputs = prop_oneof![
        ".{0,300}",
        json_tree(KEYS).prop_map(|v| v.to_string()),
        mutated(seeds),
    ];
    let n = fuzz(inputs, budget(), |text: String| {
        let _ = parse_answer(&text, &thresholds);
        // The same text as the assistant's content in a response envelope, as a string and
        // as a list of parts.
        let _ = message_text(&json!({"choices": [{"message": {"content": text}}]}));
        let _ = message_text(
            &json!({"choices": [{"message": {"content": [{"type": "text", "text": text}]}}]}),
        );
    });
    let envelopes = fuzz(json_tree(KEYS), budget() / 2, |v: Value| {
        let _ = message_text(&v);
    });
    eprintln!(
        "LLM parser: {n} answers in {:?} and {envelopes} response envelopes in {:?}, no panic",
        budget(),
        budget() / 2
    );
    assert!(n >= 2000 && envelopes >= 2000);
}
