//! `traffic-algo bench llm-pool`: the API-key pool against a local OpenAI-compatible server
//! that answers after a fixed latency (1.3 s, like qwen-vl-plus on four crops). Requests are
//! offered at the pool's nominal capacity (keys x QPS) for the whole run; the server records
//! which key each request carried and when it arrived, so throughput and the busiest 1 s window
//! of every key are measured where a provider would measure them. The scheduler's own cost is
//! measured twice: the pure bookkeeping per request, and a pool call against the bare client on a
//! zero-latency server, in the same run.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::bench::quantile;
use crate::cli::BenchLlmArgs;
use crate::config::api_keys::{KeyPoolConfig, KeySpec};
use llm::client::LlmClient;
use llm::keys::ApiKey;
use llm::pool::KeyPool;
use llm::scheduler::{Acquire, Outcome, Scheduler};

/// Arrivals seen by the fake server: key and instant.
pub type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

const ANSWER: &str = r#"{"hasDangerousDriving": false, "maxRiskLevel": "none", "results": []}"#;

async fn answer(
    State((latency, seen)): State<(Duration, Arrivals)>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string();
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key, Instant::now()));
    tokio::time::sleep(latency).await;
    axum::Json(json!({
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}],
        "usage": {"total_tokens": 1}
    }))
}

/// Starts the fake server on loopback: it answers after `latency` and records who asked when.
pub async fn fake_server(latency: Duration) -> anyhow::Result<(SocketAddr, Arrivals)> {
    let seen: Arrivals = Arc::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state((latency, Arc::clone(&seen)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, seen))
}

fn keys(n: usize, qps: f64, max_in_flight: u32) -> KeyPoolConfig {
    KeyPoolConfig {
        keys: (0..n)
            .map(|i| KeySpec {
                id: format!("k{i}"),
                api_key: ApiKey::new(format!("bench-{i}")),
                priority: 1,
                qps_limit: qps,
                rpm_limit: None,
                max_in_flight,
            })
            .collect(),
        qps_limit: None,
    }
}

/// The most arrivals of one key inside any 1 s window.
pub fn busiest_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for (end, t) in sorted.iter().enumerate() {
        while t.duration_since(sorted[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

fn body() -> Value {
    json!({"model": "bench", "messages": [{"role": "user", "content": "x"}]})
}

/// Nanoseconds of bookkeeping (acquire + finish) per request with `n` keys.
fn bookkeeping_nanos(n: usize, rounds: usize) -> f64 {
    let config = keys(n, 1e9, u32::MAX);
    let mut s = Scheduler::new(&config.keys, None);
    let t0 = Instant::now();
    let started = Instant::now();
    for i in 0..rounds {
        let now = t0 + Duration::from_micros(i as u64);
        if let Acquire::Granted(k) = std::hint::black_box(s.acquire(now)) {
            s.finish(k, Outcome::Success, now);
        }
    }
    started.elapsed().as_nanos() as f64 / rounds as f64
}

/// Runs the benchmark.
pub fn run(args: &BenchLlmArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &BenchLlmArgs) -> anyhow::Result<ExitCode> {
    let latency = Duration::from_secs_f64(args.latency);
    let (addr, seen) = fake_server(latency).await?;
    let url = format!("http://{addr}/v1");
    let timeout = Duration::from_secs(30);
    let capacity = args.keys as f64 * args.qps;
    let max_in_flight = (args.qps * args.latency * 2.0).ceil().max(1.0) as u32;
    let pool = Arc::new(KeyPool::new(
        &url,
        &keys(args.keys, args.qps, max_in_flight),
        timeout,
        2,
    )?);
    println!(
        "llm pool: {} keys x {} QPS, server latency {:.1} s, offered {capacity:.0} requests/s for {} s",
        args.keys, args.qps, args.latency, args.seconds
    );

    // Offer requests at the nominal capacity, each on its own task.
    let started = Instant::now();
    let total = (capacity * args.seconds as f64).round() as usize;
    let mut tasks = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / capacity));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..total {
        tick.tick().await;
        let pool = Arc::clone(&pool);
        tasks.push(tokio::spawn(async move { pool.complete(&body()).await }));
    }
    let mut failed = 0usize;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(_))) {
            failed += 1;
        }
    }
    let window = Duration::from_secs(args.seconds);
    let arrivals = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let in_window = arrivals
        .iter()
        .filter(|(_, at)| at.duration_since(started) < window)
        .count();
    let achieved = in_window as f64 / args.seconds as f64;
    let mut worst = 0;
    for i in 0..args.keys {
        let key = format!("bench-{i}");
        let times: Vec<Instant> = arrivals
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, t)| *t)
            .collect();
        worst = worst.max(busiest_second(&times));
    }
    println!(
        "  achieved {achieved:.2} requests/s in the first {} s = {:.1} % of {capacity:.0}; {} requests, {failed} failed",
        args.seconds,
        100.0 * achieved / capacity,
        arrivals.len()
    );
    println!(
        "  busiest 1 s window of any key: {worst} requests (limit {})",
        args.qps
    );

    // Overhead: a pool call against the bare client, zero-latency server, same run.
    let (addr, _) = fake_server(Duration::ZERO).await?;
    let url = format!("http://{addr}/v1");
    let bare = LlmClient::new(&url, ApiKey::new("bench-0"), timeout, 0)?;
    let free = KeyPool::new(&url, &keys(args.keys, 1e6, 1000), timeout, 0)?;
    let (mut bare_t, mut pool_t) = (Vec::new(), Vec::new());
    for i in 0..args.overhead_requests {
        let started = Instant::now();
        if i % 2 == 0 {
            bare.attempt(&body()).await?;
            bare_t.push(started.elapsed().as_secs_f64());
        } else {
            free.complete(&body()).await?;
            pool_t.push(started.elapsed().as_secs_f64());
        }
    }
    let (b, p) = (quantile(&bare_t, 0.5), quantile(&pool_t, 0.5));
    println!(
        "  per request: bare client {:.1} us, through the pool {:.1} us (median): overhead {:.1} us; bookkeeping alone {:.2} us",
        b * 1e6,
        p * 1e6,
        (p - b) * 1e6,
        bookkeeping_nanos(args.keys, 200_000) / 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busiest_second_counts_a_sliding_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(busiest_second(&[]), 0);
        assert_eq!(busiest_second(&[at(0), at(999), at(1000), at(1500)]), 3);
        assert_eq!(busiest_second(&[at(0), at(1000), at(2000)]), 1);
    }
}
