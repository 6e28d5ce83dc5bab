//! One process's part in streaming mode: connect to Redis, create the topics that are missing
//! (retrying while the broker is unreachable, never stopping the HTTP side), then run a consume
//! loop for each configured role that consumes (`tasks`, `llm-worker`, `aggregator` with its
//! timeout sweeper), restarted with backoff if it fails; for the `detector` role, the publisher
//! of analysed frames and the reader of merged results for this instance's cameras. Every loop is tracked and stops with the service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::aggregator::{AggregatorHandler, AggregatorStats};
use super::kafka::{GroupConsumer, Producer, ensure_topics};
use super::publisher::{DetectionPublisher, forward_merged, run_publisher};
use super::roles::{TasksHandler, WorkerHandler};
use super::runner::{Handler, RunnerConfig, RunnerParts, RunnerStats, run};
use super::shared::Shared;
use crate::counters::KafkaMetrics;
use crate::settings::{KafkaFile, NodeSettings, Role};
use camera::hub::CameraHub;
use llm::pool::KeyPool;
use retry::{Backoff, retry};

/// LLM tasks one llm-worker process handles at once (the key pool enforces the real limits).
pub const WORKER_CONCURRENCY: usize = 256;
/// Messages one aggregator handles at once.
pub const AGGREGATOR_CONCURRENCY: usize = 16;
/// Detections the tasks role splits at once.
pub const TASKS_CONCURRENCY: usize = 8;

/// Counters of this process's consume loops.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// The tasks role.
    pub tasks: Arc<RunnerStats>,
    /// The llm-worker role.
    pub llm_worker: Arc<RunnerStats>,
    /// The aggregator role's consume loop.
    pub aggregator: Arc<RunnerStats>,
    /// The aggregations.
    pub aggregations: Arc<AggregatorStats>,
}

/// This process's cameras, for the detector role.
#[derive(Debug, Clone)]
pub struct Local {
    /// The cameras (merged results go to their watchers).
    pub hub: Arc<CameraHub>,
    /// Where analysed frames are queued, when this process is a detector.
    pub publisher: Option<Arc<DetectionPublisher>>,
}

/// Starts this process's streaming roles in the background.
pub async fn start(
    settings: &NodeSettings,
    pool: Option<Arc<KeyPool>>,
    local: Local,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    kafka_metrics: Arc<KafkaMetrics>,
) -> anyhow::Result<Arc<NodeStats>> {
    let k = settings;
    let roles = &k.roles;
    if roles.contains(&Role::LlmWorker) && pool.is_none() {
        anyhow::bail!("the llm-worker role needs an API key (DASHSCOPE_API_KEY or a key pool)");
    }
    let url = k
        .redis_url
        .as_ref()
        .context("streaming mode needs redis.url")?;
    let shared = Shared::connect(url, &k.file.group_prefix)
        .await
        .context("cannot connect to Redis")?;
    let producer = Producer::with_metrics(&k.bootstrap_servers, kafka_metrics)?;
    let stats = Arc::new(NodeStats::default());
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    tracing::info!(roles = ?names, instance = %k.instance_id, "streaming mode");

    let file = k.file.clone();
    let instance_id = k.instance_id.clone();
    let bootstrap = k.bootstrap_servers.clone();
    let mut loops: Vec<(RunnerConfig, Arc<dyn Handler>, Arc<RunnerStats>)> = Vec::new();
    let runner = |role: Role, topic: &str, concurrency: usize| RunnerConfig {
        role: role.as_str(),
        group: format!("{}-{}", file.group_prefix, role.as_str()),
        topics: vec![topic.to_string()],
        dead_letter: file.topics.dead_letter.name.clone(),
        max_attempts: file.max_attempts,
        concurrency,
    };
    if roles.contains(&Role::Tasks) {
        let handler = TasksHandler {
            tasks_topic: file.topics.assessment_tasks.name.clone(),
        };
        loops.push((
            runner(
                Role::Tasks,
                &file.topics.detection_results.name,
                TASKS_CONCURRENCY,
            ),
            Arc::new(handler),
            Arc::clone(&stats.tasks),
        ));
    }
    if let (true, Some(pool)) = (roles.contains(&Role::LlmWorker), pool) {
        let handler = WorkerHandler {
            pool,
            prompt: k.prompt.clone(),
            thresholds: k.thresholds,
            results_topic: file.topics.risk_assessment_results.name.clone(),
        };
        loops.push((
            runner(
                Role::LlmWorker,
                &file.topics.assessment_tasks.name,
                WORKER_CONCURRENCY,
            ),
            Arc::new(handler),
            Arc::clone(&stats.llm_worker),
        ));
    }
    let mut sweeper = None;
    if roles.contains(&Role::Aggregator) {
        let handler = AggregatorHandler {
            shared: shared.clone(),
            merged_topic: file.topics.merged_results.name.clone(),
            producer: producer.clone(),
            timeout: k.aggregation_timeout,
            stats: Arc::clone(&stats.aggregations),
        };
        let mut cfg = runner(
            Role::Aggregator,
            &file.topics.detection_results.name,
            AGGREGATOR_CONCURRENCY,
        );
        cfg.topics
            .push(file.topics.risk_assessment_results.name.clone());
        sweeper = Some(handler.clone());
        loops.push((cfg, Arc::new(handler), Arc::clone(&stats.aggregator)));
    }
    let spawner = tracker.clone();
    tracker.spawn(async move {
        if !topics_ready(&bootstrap, &file, &shutdown).await {
            return;
        }
        if let Some(publisher) = &local.publisher
            && let Some(rx) = publisher.take_receiver()
        {
            spawner.spawn(run_publisher(
                rx,
                producer.clone(),
                file.topics.detection_results.name.clone(),
                Arc::clone(&publisher.stats),
                shutdown.clone(),
            ));
            let group = format!("{}-instance-{}", file.group_prefix, instance_id);
            let topic = file.topics.merged_results.name.clone();
            match GroupConsumer::with_metrics(
                &bootstrap,
                &group,
                &[topic.as_str()],
                producer.metrics(),
            ) {
                Ok(consumer) => {
                    spawner.spawn(forward_merged(
                        consumer,
                        topic,
                        instance_id.clone(),
                        Arc::clone(&local.hub),
                        Arc::clone(&publisher.stats),
                        shutdown.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot read merged results"),
            }
        }
        if let Some(sweeper) = sweeper {
            spawner.spawn(sweeper.sweep(producer.clone(), shutdown.clone()));
        }
        for (cfg, handler, loop_stats) in loops {
            let parts = RunnerParts {
                bootstrap: bootstrap.clone(),
                producer: producer.clone(),
                shared: shared.clone(),
                stats: loop_stats,
            };
            spawner.spawn(supervise(cfg, parts, handler, shutdown.clone()));
        }
    });
    Ok(stats)
}

/// Restarts with backoff: broker and consume loops, 1 s doubling to 30 s.
fn restart_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Creates the missing topics, retrying while the broker is unreachable; false when shut down
/// first.
async fn topics_ready(bootstrap: &str, file: &KafkaFile, shutdown: &CancellationToken) -> bool {
    let topics = file.topics.all();
    let ready = retry(
        u32::MAX,
        restart_backoff(),
        Some(shutdown),
        |_| true,
        |e, _| tracing::warn!(error = %e, "broker not ready; retrying"),
        |_| ensure_topics(bootstrap, &topics),
    )
    .await;
    match ready {
        Ok(done) if !done.value.is_empty() => {
            tracing::info!(topics = ?done.value, "created topics");
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Runs one consume loop until shutdown, restarting it with backoff when it fails.
async fn supervise(
    cfg: RunnerConfig,
    parts: RunnerParts,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) {
    let role = cfg.role;
    let _ = retry(
        u32::MAX,
        restart_backoff(),
        Some(&shutdown),
        |_| true,
        |e, _| tracing::error!(role, error = %e, "consume loop failed; restarting"),
        |_| {
            run(
                cfg.clone(),
                parts.clone(),
                Arc::clone(&handler),
                shutdown.clone(),
            )
        },
    )
    .await;
}
