//! One process's part in streaming mode: connect to Redis, start the probe of both dependencies,
//! create the topics that are missing (or only check them, `create_topics: false`; retrying
//! while the broker is unreachable or a topic is missing, never stopping the HTTP side), then run
//! a consume loop for each configured role that consumes (`tasks`, `llm-worker`, `aggregator`
//! with its timeout sweeper), restarted with backoff if it fails; for the `detector` role, the
//! publisher of analysed frames and the reader of merged results for this instance's cameras.
//! Every loop is tracked and stops with the service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::aggregator::{AggregatorHandler, AggregatorStats};
use super::dependencies::{Dependencies, probe};
use super::fleet::{CameraRunner, FleetStats, OwnershipParts, run_ownership, write_definitions};
use super::kafka::{BrokerError, Durability, GroupConsumer, Producer, check_topics, ensure_topics};
use super::publisher::{DetectionPublisher, forward_merged, run_publisher};
use super::relay::{Fleet, run_catalog, run_relay, run_watch_registry};
use super::roles::{TasksHandler, WorkerHandler};
use super::runner::{Handler, RunnerConfig, RunnerParts, RunnerStats, run};
use super::shared::Shared;
use crate::counters::KafkaMetrics;
use crate::settings::{Connection, KafkaFile, NodeSettings, Role};
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
    /// Whether Kafka and Redis answer, and the topics are ready.
    pub dependencies: Arc<Dependencies>,
    /// The fleet's camera ownership (detector role).
    pub fleet: Arc<FleetStats>,
}

/// This process's cameras, for the detector role.
#[derive(Debug, Clone)]
pub struct Local {
    /// The cameras (merged results go to their watchers).
    pub hub: Arc<CameraHub>,
    /// Where analysed frames are queued, when this process is a detector.
    pub publisher: Option<Arc<DetectionPublisher>>,
    /// The fleet, when this process is a detector: declared cameras are written to it, and
    /// this instance runs the cameras Kafka assigns it.
    pub fleet: Option<Arc<Fleet>>,
}

/// One consume loop to run: its configuration, what it does with a message, its counters.
type RoleLoop = (RunnerConfig, Arc<dyn Handler>, Arc<RunnerStats>);

/// Starts this process's streaming roles in the background.
pub async fn start(
    settings: &NodeSettings,
    pool: Option<Arc<KeyPool>>,
    local: Local,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    kafka_metrics: Arc<KafkaMetrics>,
) -> anyhow::Result<Arc<NodeStats>> {
    if settings.roles.contains(&Role::LlmWorker) && pool.is_none() {
        anyhow::bail!("the llm-worker role needs an API key (DASHSCOPE_API_KEY or a key pool)");
    }
    let url = settings
        .redis_url
        .as_ref()
        .context("streaming mode needs redis.url")?;
    let shared = Shared::connect(url, &settings.file.group_prefix)
        .await
        .context("cannot connect to Redis")?;
    let producer = Producer::with_metrics(&settings.connection, kafka_metrics)?;
    let stats = Arc::new(NodeStats {
        fleet: (local.fleet.as_ref())
            .map(|f| Arc::clone(f.stats()))
            .unwrap_or_default(),
        ..NodeStats::default()
    });
    let names: Vec<&str> = settings.roles.iter().map(|r| r.as_str()).collect();
    tracing::info!(roles = ?names, instance = %settings.instance_id, "streaming mode");
    let (loops, sweeper) = role_loops(settings, pool, &shared, &producer, &stats);
    tracker.spawn(probe(
        Arc::clone(&stats.dependencies),
        producer.clone(),
        shared.clone(),
        settings.file.topics.detection_results.name.clone(),
        shutdown.clone(),
    ));
    let settings = settings.clone();
    let spawner = tracker.clone();
    let dependencies = Arc::clone(&stats.dependencies);
    if local.fleet.is_some() {
        // Not ready before the fleet's cameras are known (a client could not subscribe).
        dependencies.expect_catalog();
    }
    tracker.spawn(async move {
        let connection = &settings.connection;
        if !topics_ready(connection, &settings.file, &shutdown).await {
            return;
        }
        dependencies.set_topics_ready();
        if let Some(publisher) = &local.publisher {
            start_detector_role(
                &settings, publisher, &local.hub, &producer, &spawner, &shutdown,
            );
        }
        if let Some(fleet) = &local.fleet {
            start_fleet(
                &settings,
                (fleet, &dependencies),
                (&local.hub, &shared),
                &producer,
                &spawner,
                &shutdown,
            );
        }
        if let Some(sweeper) = sweeper {
            spawner.spawn(sweeper.sweep(producer.clone(), shutdown.clone()));
        }
        for (cfg, handler, loop_stats) in loops {
            let parts = RunnerParts {
                connection: connection.clone(),
                producer: producer.clone(),
                shared: shared.clone(),
                stats: loop_stats,
            };
            let role = cfg.role;
            spawner.spawn(keep_running(role, shutdown.clone(), move |shutdown| {
                run(cfg.clone(), parts.clone(), Arc::clone(&handler), shutdown)
            }));
        }
    });
    Ok(stats)
}

/// The consume loops of this process's roles (tasks, llm-worker, aggregator), and the
/// aggregator's handler for its timeout sweeper.
fn role_loops(
    settings: &NodeSettings,
    pool: Option<Arc<KeyPool>>,
    shared: &Shared,
    producer: &Producer,
    stats: &NodeStats,
) -> (Vec<RoleLoop>, Option<AggregatorHandler>) {
    let (roles, file) = (&settings.roles, &settings.file);
    let topics = &file.topics;
    let runner = |role: Role, topic: &str, concurrency: usize| RunnerConfig {
        role: role.as_str(),
        group: format!("{}-{}", file.group_prefix, role.as_str()),
        topics: vec![topic.to_string()],
        dead_letter: topics.dead_letter.name.clone(),
        max_attempts: file.max_attempts,
        concurrency,
        rejoin_idle: (file.rejoin_idle_seconds > 0)
            .then(|| Duration::from_secs(file.rejoin_idle_seconds)),
    };
    let mut loops: Vec<RoleLoop> = Vec::new();
    if roles.contains(&Role::Tasks) {
        let handler = TasksHandler {
            tasks_topic: topics.assessment_tasks.name.clone(),
        };
        let cfg = runner(
            Role::Tasks,
            &topics.detection_results.name,
            TASKS_CONCURRENCY,
        );
        loops.push((cfg, Arc::new(handler), Arc::clone(&stats.tasks)));
    }
    if let (true, Some(pool)) = (roles.contains(&Role::LlmWorker), pool) {
        let handler = WorkerHandler {
            pool,
            prompt: settings.prompt.clone(),
            thresholds: settings.thresholds,
            results_topic: topics.risk_assessment_results.name.clone(),
        };
        let cfg = runner(
            Role::LlmWorker,
            &topics.assessment_tasks.name,
            WORKER_CONCURRENCY,
        );
        loops.push((cfg, Arc::new(handler), Arc::clone(&stats.llm_worker)));
    }
    let mut sweeper = None;
    if roles.contains(&Role::Aggregator) {
        let handler = AggregatorHandler {
            shared: shared.clone(),
            merged_topic: topics.merged_results.name.clone(),
            producer: producer.clone(),
            timeout: settings.aggregation_timeout,
            stats: Arc::clone(&stats.aggregations),
        };
        let mut cfg = runner(
            Role::Aggregator,
            &topics.detection_results.name,
            AGGREGATOR_CONCURRENCY,
        );
        cfg.topics.push(topics.risk_assessment_results.name.clone());
        sweeper = Some(handler.clone());
        loops.push((cfg, Arc::new(handler), Arc::clone(&stats.aggregator)));
    }
    (loops, sweeper)
}

/// The detector role's two loops: analysed frames to `detection-results`, and this instance's
/// merged results back to its cameras' watchers.
fn start_detector_role(
    settings: &NodeSettings,
    publisher: &Arc<DetectionPublisher>,
    hub: &Arc<CameraHub>,
    producer: &Producer,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let Some(rx) = publisher.take_receiver() else {
        return;
    };
    let topics = &settings.file.topics;
    tracker.spawn(run_publisher(
        rx,
        producer.clone(),
        topics.detection_results.name.clone(),
        Arc::clone(&publisher.stats),
        shutdown.clone(),
    ));
    let group = format!(
        "{}-instance-{}",
        settings.file.group_prefix, settings.instance_id
    );
    let topic = topics.merged_results.name.clone();
    match GroupConsumer::with_metrics(
        &settings.connection,
        &group,
        &[topic.as_str()],
        producer.metrics(),
    ) {
        Ok(consumer) => {
            tracker.spawn(forward_merged(
                consumer,
                topic,
                settings.instance_id.clone(),
                Arc::clone(hub),
                Arc::clone(publisher),
                shutdown.clone(),
            ));
        }
        Err(e) => tracing::error!(error = %e, "cannot read merged results"),
    }
}

/// The fleet's loops: this instance's declared cameras written to the definitions topic; the
/// cameras of the partitions it is assigned run here; the catalog of every camera; its
/// clients' watches said in Redis; the live messages of cameras running elsewhere relayed to
/// them.
fn start_fleet(
    settings: &NodeSettings,
    (fleet, dependencies): (&Arc<Fleet>, &Arc<Dependencies>),
    (hub, shared): (&Arc<CameraHub>, &Shared),
    producer: &Producer,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let topics = &settings.file.topics;
    let (topic, live_topic) = (
        topics.camera_definitions.name.clone(),
        topics.live_results.name.clone(),
    );
    let definitions = &fleet.definitions;
    let stats = Arc::clone(&definitions.stats);
    if let Some(rx) = definitions.take_receiver() {
        tracker.spawn(write_definitions(
            rx,
            producer.clone(),
            topic.clone(),
            Arc::clone(&stats),
            shutdown.clone(),
        ));
    }
    tracker.spawn(run_watch_registry(
        Arc::clone(fleet),
        shared.clone(),
        shutdown.clone(),
    ));
    let connection = settings.connection.clone();
    let (f, d, c, t) = (
        Arc::clone(fleet),
        Arc::clone(dependencies),
        connection.clone(),
        topic.clone(),
    );
    tracker.spawn(keep_running(
        "camera catalog",
        shutdown.clone(),
        move |stop| run_catalog(Arc::clone(&f), Arc::clone(&d), c.clone(), t.clone(), stop),
    ));
    let (h, s, c, t) = (
        Arc::clone(hub),
        Arc::clone(&stats),
        connection.clone(),
        live_topic.clone(),
    );
    tracker.spawn(keep_running(
        "live results",
        shutdown.clone(),
        move |stop| run_relay(Arc::clone(&h), Arc::clone(&s), c.clone(), t.clone(), stop),
    ));
    let runner: Arc<dyn CameraRunner> = Arc::clone(hub) as Arc<dyn CameraRunner>;
    let group = format!("{}-cameras", settings.file.group_prefix);
    let (instance_id, shared, definitions, producer) = (
        settings.instance_id.clone(),
        shared.clone(),
        Arc::clone(definitions),
        producer.clone(),
    );
    tracker.spawn(keep_running(
        "camera ownership",
        shutdown.clone(),
        move |stop| {
            let parts = OwnershipParts {
                connection: connection.clone(),
                topic: topic.clone(),
                group: group.clone(),
                instance_id: instance_id.clone(),
                shared: shared.clone(),
                runner: Arc::clone(&runner),
                definitions: Arc::clone(&definitions),
                producer: producer.clone(),
                live_topic: live_topic.clone(),
                stats: Arc::clone(&stats),
            };
            run_ownership(parts, stop)
        },
    ));
}

/// Runs the loop `run` makes until shutdown, restarting it with backoff when it fails.
async fn keep_running<F, Fut>(what: &'static str, shutdown: CancellationToken, run: F)
where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), BrokerError>>,
{
    let _ = retry(
        u32::MAX,
        restart_backoff(),
        Some(&shutdown),
        |_| true,
        |e, _| tracing::error!(what, error = %e, "loop failed; restarting"),
        |_| run(shutdown.clone()),
    )
    .await;
}

/// Restarts with backoff: broker and consume loops, 1 s doubling to 30 s.
fn restart_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Creates the missing topics (or, with `create_topics: false`, checks that they exist),
/// retrying while the broker is unreachable or a topic is missing; false when shut down first.
async fn topics_ready(conn: &Connection, file: &KafkaFile, shutdown: &CancellationToken) -> bool {
    let topics = file.topics.all();
    let durability = Durability {
        replication_factor: file.replication_factor,
        min_insync_replicas: file.min_insync_replicas,
    };
    let ready = retry(
        u32::MAX,
        restart_backoff(),
        Some(shutdown),
        |_| true,
        |e, _| tracing::warn!(error = %e, "topics not ready; retrying"),
        |_| async {
            if file.create_topics {
                ensure_topics(conn, &topics, durability).await
            } else {
                check_topics(conn, &topics).await.map(|()| Vec::new())
            }
        },
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
