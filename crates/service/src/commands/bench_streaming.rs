//! `traffic-algo bench streaming`: the streaming pipeline tasks -> llm-worker -> aggregator on a
//! real broker and Redis (given by address; `scripts/bench.sh` starts Tansu and redis-server on
//! loopback), with a local fake LLM. Each role runs its own consume loop in this process, as
//! separate processes would (one consumer group per role, one member per llm-worker).
//! 1. Throughput: detections of two groups each are published as fast as the broker takes them,
//!    the LLM answers at once; tasks per second from the first record sent to the last merged
//!    result received.
//! 2. Latency: detections published at a steady rate (like cameras every 1.8 s), the LLM
//!    answering in 1.3 s; time from a record's publication to its merged result, p50 and p99,
//!    with 1 and 2 llm-workers.
//!
//! The key pool has enough keys that it is never the limit here (its own benchmark is
//! `bench llm-pool`).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::detection::{GroupImage, TrafficGroup};
use protocol::{DetectionResult, RiskLevel};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use super::bench::quantile;
use super::bench_llm::fake_server;
use crate::cli::BenchStreamingArgs;
use crate::config::RiskThresholds;
use crate::config::api_keys::{KeyPoolConfig, KeySpec};
use crate::config::kafka::KafkaFile;
use llm::keys::ApiKey;
use llm::pool::KeyPool;
use llm::prompt::PromptConfig;
use streaming::aggregator::AggregatorHandler;
use streaming::kafka::{Durability, GroupConsumer, Producer, ensure_topics};
use streaming::messages::{DetectionRecord, GroupBrief, MergedResult, decode, encode_detection};
use streaming::roles::{TasksHandler, WorkerHandler};
use streaming::runner::{Handler, RunnerConfig, RunnerParts, run};
use streaming::settings::Connection;
use streaming::shared::Shared;

use crate::config::Config;

/// Runs the benchmark: the LLM pipeline (unless `--fleet-only`), then the fleet when
/// `--fleet-url` is given.
pub fn run_bench(config: &Config, args: &BenchStreamingArgs) -> anyhow::Result<ExitCode> {
    llm::client::install_tls();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if !args.fleet_only {
        runtime.block_on(run_async(args))?;
    }
    if let Some(url) = &args.fleet_url {
        runtime.block_on(super::bench_fleet::run(
            args,
            url,
            config.stream.frame_interval,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn record(run: &str, n: usize) -> DetectionRecord {
    // A small JPEG-sized crop (20 kB of base64) per group.
    let crop = "A".repeat(20_000);
    let image = |id: u64| GroupImage {
        group_index: id as usize,
        group_id: id,
        image_base64: crop.clone(),
        bbox: Default::default(),
        object_count: 2,
        classes: vec!["car".into()],
        image_width: 64,
        image_height: 64,
    };
    let group = |id: u64| TrafficGroup {
        group_index: id as usize,
        group_id: id,
        object_count: 2,
        bbox: Default::default(),
        classes: vec!["car".into()],
        average_confidence: 0.8,
        risk_level: RiskLevel::None,
        member_track_ids: vec![],
    };
    let brief = |id: u64| GroupBrief {
        group_id: id,
        group_index: id as usize,
        summary: format!("Group 1 (id {id}): 2 cars, 1.2 box heights apart"),
        flagged: false,
    };
    let detection_id = format!("{run}-{n}");
    DetectionRecord {
        message_id: format!("det:{detection_id}"),
        detection_id,
        camera_id: (n % 50) as i64,
        instance_id: run.to_string(),
        result: DetectionResult {
            camera_id: (n % 50) as i64,
            traffic_groups: vec![group(1), group(2)],
            group_images: vec![image(1), image(2)],
            ..Default::default()
        },
        groups: vec![brief(1), brief(2)],
    }
}

/// One pipeline: the roles' loops under a fresh group prefix.
struct Pipeline {
    stop: CancellationToken,
    merged: GroupConsumer,
    detections: String,
    producer: Producer,
    run: String,
}

async fn pipeline(
    args: &BenchStreamingArgs,
    workers: usize,
    latency: Duration,
) -> anyhow::Result<Pipeline> {
    let run_id = format!(
        "bench{}x{workers}",
        chrono::Utc::now().timestamp_millis() % 10_000_000
    );
    // Fresh topics per run: new groups read from the earliest offset, and earlier runs'
    // messages must not count.
    let mut topics = KafkaFile::default().topics;
    for t in [
        &mut topics.detection_results,
        &mut topics.assessment_tasks,
        &mut topics.risk_assessment_results,
        &mut topics.merged_results,
        &mut topics.dead_letter,
    ] {
        t.name = format!("{run_id}-{}", t.name);
    }
    let file = KafkaFile {
        group_prefix: run_id.clone(),
        topics,
        ..KafkaFile::default()
    };
    let conn = Connection::plain(&args.bootstrap);
    ensure_topics(&conn, &file.topics.all(), Durability::default()).await?;
    let shared = Shared::connect(&args.redis, &run_id).await?;
    let producer = Producer::new(&conn)?;
    let (addr, _) = fake_server(latency).await?;
    let keys = KeyPoolConfig {
        keys: (0..10)
            .map(|i| KeySpec {
                id: format!("k{i}"),
                api_key: ApiKey::new(format!("bench-{i}")),
                priority: 1,
                qps_limit: 1000.0,
                rpm_limit: None,
                max_in_flight: 1000,
            })
            .collect(),
        qps_limit: None,
    };
    let stop = CancellationToken::new();
    let parts = RunnerParts {
        connection: conn.clone(),
        producer: producer.clone(),
        shared: shared.clone(),
        stats: Arc::default(),
    };
    let t = &file.topics;
    let cfg = |role: &'static str, topics: Vec<String>, concurrency: usize| RunnerConfig {
        role,
        group: format!("{run_id}-{role}"),
        topics,
        dead_letter: t.dead_letter.name.clone(),
        max_attempts: 3,
        concurrency,
        // The bench runs on Tansu, which can leave a new member unassigned.
        rejoin_idle: Some(streaming::runner::REJOIN_AFTER),
    };
    let mut loops: Vec<(RunnerConfig, Arc<dyn Handler>)> = vec![(
        cfg("tasks", vec![t.detection_results.name.clone()], 8),
        Arc::new(TasksHandler {
            tasks_topic: t.assessment_tasks.name.clone(),
        }),
    )];
    for _ in 0..workers {
        let pool = KeyPool::new(
            &format!("http://{addr}/v1"),
            &keys,
            Duration::from_secs(30),
            2,
        )?;
        loops.push((
            cfg(
                "llm-worker",
                vec![t.assessment_tasks.name.clone()],
                streaming::node::WORKER_CONCURRENCY,
            ),
            Arc::new(WorkerHandler {
                pool: Arc::new(pool),
                prompt: PromptConfig {
                    model: "bench".into(),
                    max_image_tokens: 1280,
                    max_answer_tokens: 100,
                },
                thresholds: RiskThresholds {
                    low: 0.45,
                    medium: 0.65,
                    high: 0.8,
                },
                results_topic: t.risk_assessment_results.name.clone(),
            }),
        ));
    }
    let aggregator = AggregatorHandler {
        shared,
        merged_topic: t.merged_results.name.clone(),
        producer: producer.clone(),
        timeout: Duration::from_secs(60),
        stats: Arc::default(),
    };
    loops.push((
        cfg(
            "aggregator",
            vec![
                t.detection_results.name.clone(),
                t.risk_assessment_results.name.clone(),
            ],
            16,
        ),
        Arc::new(aggregator),
    ));
    for (c, h) in loops {
        tokio::spawn(run(c, parts.clone(), h, stop.clone()));
    }
    let merged = GroupConsumer::new(
        &conn,
        &format!("{run_id}-reader"),
        &[t.merged_results.name.as_str()],
    )?;
    Ok(Pipeline {
        stop,
        merged,
        detections: t.detection_results.name.clone(),
        producer,
        run: run_id,
    })
}

/// Publishes `count` records `every` apart; returns when each was sent.
async fn publish(p: &Pipeline, count: usize, every: Duration) -> anyhow::Result<Vec<Instant>> {
    let mut sent = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(every.max(Duration::from_micros(1)));
    for n in 0..count {
        if !every.is_zero() {
            tick.tick().await;
        }
        let r = record(&p.run, n);
        p.producer
            .send(
                &p.detections,
                &r.camera_id.to_string(),
                &encode_detection(&r)?,
            )
            .await?;
        sent.push(Instant::now());
    }
    Ok(sent)
}

/// Waits for `count` merged results (of this run); returns when each arrived, by record number.
async fn collect(p: &Pipeline, count: usize, limit: Duration) -> HashMap<usize, Instant> {
    let mut got = HashMap::new();
    let deadline = Instant::now() + limit;
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(m)) = tokio::time::timeout(left, p.merged.inner.recv()).await else {
            break;
        };
        let Ok(merged) = decode::<MergedResult>(m.payload().unwrap_or_default()) else {
            continue;
        };
        let n = merged
            .detection_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok());
        if let (true, Some(n)) = (merged.instance_id == p.run, n) {
            got.entry(n).or_insert_with(Instant::now);
        }
    }
    got
}

async fn run_async(args: &BenchStreamingArgs) -> anyhow::Result<ExitCode> {
    println!(
        "streaming: broker {}, Redis {}; tasks -> llm-worker -> aggregator",
        args.bootstrap, args.redis
    );
    // 1. Throughput at zero LLM latency.
    for &workers in &args.workers {
        let p = pipeline(args, workers, Duration::ZERO).await?;
        let records = args.tasks / 2;
        // Let the consumer groups settle before measuring.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let started = Instant::now();
        let (sent, got) = tokio::join!(
            publish(&p, records, Duration::ZERO),
            collect(&p, records, Duration::from_secs(300))
        );
        sent?;
        let elapsed = got
            .values()
            .max()
            .map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64());
        println!(
            "  throughput, {workers} llm-worker(s): {} tasks in {elapsed:.2} s = {:.0} tasks/s ({} of {records} detections merged)",
            got.len() * 2,
            (got.len() * 2) as f64 / elapsed,
            got.len()
        );
        p.stop.cancel();
    }
    // 2. End-to-end latency at the given LLM latency and detection rate.
    let every = Duration::from_secs_f64(1.0 / args.rate);
    for &workers in &args.workers {
        let p = pipeline(args, workers, Duration::from_secs_f64(args.latency)).await?;
        // Let the consumer groups settle before measuring.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let count = (args.rate * args.seconds as f64) as usize;
        // Read while publishing, so arrival times are real.
        let (sent, got) = tokio::join!(
            publish(&p, count, every),
            collect(&p, count, Duration::from_secs(args.seconds + 120))
        );
        let sent = sent?;
        let latencies: Vec<f64> = got
            .iter()
            .map(|(n, at)| at.duration_since(sent[*n]).as_secs_f64())
            .collect();
        println!(
            "  latency, {workers} llm-worker(s), LLM {:.1} s, {:.1} detections/s for {} s: p50 {:.2} s, p99 {:.2} s ({} of {count} merged)",
            args.latency,
            args.rate,
            args.seconds,
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            got.len()
        );
        p.stop.cancel();
    }
    Ok(ExitCode::SUCCESS)
}
