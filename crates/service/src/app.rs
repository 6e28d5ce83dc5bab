//! Wiring of the live service (`serve`): detector and inference thread, camera hub, HTTP
//! router, listener; and the shutdown order: on the first Ctrl-C/SIGTERM stop accepting, end
//! WebSocket sessions, stop cameras, wait for their tasks up to a grace period, exit 0. A second
//! signal exits at once.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use camera::hub::CameraHub;
use camera::pipeline::Pipeline;
use camera::result::ModelFacts;
use camera::sink::FrameSink;
use llm::advisor::AdvisorLink;
use llm::pool::KeyPool;
use llm::prompt::PromptConfig;
use streaming::fleet::Definitions;
use streaming::publisher::DetectionPublisher;
use streaming::relay::Fleet;

use crate::backend::{self, BackendClient};
use crate::config::Config;
use crate::config::kafka::Role;
use crate::declared::Declared;
use crate::detection::{inference_pool, scene_config};
use crate::http::{AppState, router};
use crate::measure::sink::MeasureSink;
use crate::metrics::{InfoLabel, Metrics, Sources};
use crate::scenes::SceneBook;
use crate::sinks::{LlmSink, MetricsSink, StoreSink};
use crate::storage::FrameStore;
use store::{Store, Writer, WriterConfig};

/// How long cameras get to stop after the signal.
pub const GRACE: Duration = Duration::from_secs(8);

/// Inference jobs queued before cameras start dropping frames.
const INFERENCE_QUEUE: usize = 4;

/// SIGINT and SIGTERM listeners. Created before the service announces itself, so that a signal
/// arriving right after start-up is handled, not fatal.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// What the live service builds from its configuration before it serves: the pipeline every
/// camera shares (detector sessions on their threads, model facts, scene set-up, sinks) and the
/// sinks and metrics the rest of the service reads.
#[derive(Debug)]
pub struct Parts {
    /// What every camera's pipeline shares.
    pub pipeline: Arc<Pipeline>,
    /// The metric families.
    pub metrics: Arc<Metrics>,
    /// The LLM beside each camera, when on in standalone mode.
    pub llm: Option<Arc<LlmSink>>,
    /// Streaming mode's detector role: frames go to the broker too.
    pub publisher: Option<Arc<DetectionPublisher>>,
    /// Streaming mode's detector role: the fleet, which runs each camera on one instance
    /// (declared ones, and those clients of any instance ask for).
    pub fleet: Option<Arc<Fleet>>,
    /// Where analysed frames are saved, when `storage.save_raw_frames` is on.
    pub store: Option<FrameStore>,
    /// The API-key pool, when the LLM is on (standalone or streaming).
    pub pool: Option<Arc<KeyPool>>,
    /// Measures and events to the database, when `measurement.enabled`.
    pub measure: Option<Arc<MeasureSink>>,
    /// The measurement database, for the API.
    pub database: Option<Store>,
}

/// Opens the measurement database (lazily: one that is down at start delays the writes, the
/// service starts anyway) and starts its writer.
fn measurement(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<(Store, Arc<MeasureSink>)>> {
    let m = &config.measurement;
    if !m.enabled {
        return Ok(None);
    }
    let backend = match &m.database_url {
        Some(url) => store::Backend::Postgres(url.expose().to_string()),
        None => store::Backend::Sqlite(m.database_path.clone()),
    };
    let db = Store::open_lazy(&store::StoreConfig {
        backend,
        retention_days: m.retention_days,
    });
    tracing::info!(database = %db.describe(), bin_seconds = m.bin_seconds, "measurement on");
    let writer = Writer::spawn(db.clone(), WriterConfig::default())
        .context("cannot start the database writer")?;
    let sink = MeasureSink::new(
        m.bin_seconds,
        writer,
        Arc::clone(metrics),
        m.snapshot_dir.clone(),
    );
    Ok(Some((db, Arc::new(sink))))
}

/// Builds the shared pipeline and its sinks. Must run inside the async runtime when the LLM is
/// on (its requests are spawned on it, tracked by `tasks` and abandoned at `shutdown`).
pub fn parts(
    config: &Config,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Parts> {
    let choice = config.model.choice();
    tracing::info!(
        model = %choice.path.display(),
        precision = choice.precision,
        why = %choice.reason,
        "detector model"
    );
    let worker = inference_pool(config, INFERENCE_QUEUE)?;
    let metrics = Metrics::new(&system_info(config));
    let topics = config.kafka.file.topics.all();
    metrics
        .kafka
        .show_topics(topics.iter().map(|t| t.name.as_str()));
    let pool = key_pool(config)?;
    let llm = match &pool {
        Some(pool) => llm_link(config, pool, tasks, shutdown)?
            .map(|link| Arc::new(LlmSink::new(Arc::new(link)))),
        None => None,
    };
    let detector = config.kafka.enabled && config.kafka.roles.contains(&Role::Detector);
    let publisher = detector.then(|| {
        Arc::new(DetectionPublisher::new(
            &config.kafka.instance_id,
            config.llm.cooldown,
            config.stream.alert_pause,
        ))
    });
    let fleet = detector.then(|| {
        Arc::new(Fleet::new(
            &config.kafka.instance_id,
            Arc::new(Definitions::default()),
        ))
    });
    let store = config
        .storage
        .save_raw_frames
        .then(|| FrameStore::new(&config.storage.save_dir));
    // The order matters: each sink sees what the ones before it added to the result.
    let mut sinks: Vec<Arc<dyn FrameSink>> = Vec::new();
    if let Some(llm) = &llm {
        sinks.push(Arc::clone(llm) as Arc<dyn FrameSink>);
    }
    if let Some(store) = &store {
        sinks.push(Arc::new(StoreSink::new(
            store.clone(),
            Arc::clone(&metrics),
        )));
    }
    let measured = measurement(config, &metrics)?;
    if let Some((_, sink)) = &measured {
        sinks.push(Arc::clone(sink) as Arc<dyn FrameSink>);
    }
    sinks.push(Arc::new(MetricsSink::new(Arc::clone(&metrics))));
    if let Some(publisher) = &publisher {
        sinks.push(Arc::clone(publisher) as Arc<dyn FrameSink>);
    }
    let pipeline = Pipeline {
        worker,
        facts: model_facts(config),
        scene: scene_config(config),
        alert_pause: config.stream.alert_pause,
        sinks,
        sources: Arc::new(camera::source::Sources),
    };
    Ok(Parts {
        pipeline: Arc::new(pipeline),
        metrics,
        llm,
        publisher,
        fleet,
        store,
        pool,
        database: measured.as_ref().map(|(db, _)| db.clone()),
        measure: measured.map(|(_, sink)| sink),
    })
}

/// What every `detection_result` says about the model: the named model's file stem (whichever
/// precision runs), the kept classes, whether objects are tracked.
pub fn model_facts(config: &Config) -> ModelFacts {
    let model_type = config
        .model
        .fp32_path()
        .file_stem()
        .map_or_else(|| "yolo".to_string(), |s| s.to_string_lossy().into_owned());
    ModelFacts {
        model_type,
        supported_classes: config.model.classes.clone(),
        tracking_enabled: config.tracking.enabled,
    }
}

/// What `system_info` says about this process.
fn system_info(config: &Config) -> InfoLabel {
    InfoLabel {
        version: env!("CARGO_PKG_VERSION"),
        mode: mode(config),
        model: config
            .model
            .path()
            .file_name()
            .map_or_else(|| "unknown".into(), |n| n.to_string_lossy().into_owned()),
        llm_model: if config.llm_active() {
            config.llm.model.clone()
        } else {
            "off".into()
        },
    }
}

/// `standalone` or `streaming`.
fn mode(config: &Config) -> &'static str {
    if config.kafka.enabled {
        "streaming"
    } else {
        "standalone"
    }
}

/// The API-key pool, when the LLM is on and has a key.
pub fn key_pool(config: &Config) -> anyhow::Result<Option<Arc<KeyPool>>> {
    if !config.llm_active() {
        return Ok(None);
    }
    Ok(Some(Arc::new(KeyPool::new(
        &config.llm.base_url,
        &config.llm.pool,
        config.llm.timeout,
        config.llm.max_retry,
    )?)))
}

/// How LLM requests are built.
pub fn prompt_config(config: &Config) -> PromptConfig {
    PromptConfig {
        model: config.llm.model.clone(),
        max_image_tokens: config.llm.max_image_tokens,
        max_answer_tokens: 800,
    }
}

/// The LLM link every camera shares, when the LLM is on, has a key and the service runs
/// standalone (in streaming mode the LLM work goes through the broker). Must run inside the
/// async runtime (requests are spawned on it).
fn llm_link(
    config: &Config,
    pool: &Arc<KeyPool>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<AdvisorLink>> {
    if config.kafka.enabled {
        return Ok(None);
    }
    let runtime =
        tokio::runtime::Handle::try_current().context("the LLM needs the async runtime")?;
    Ok(Some(AdvisorLink {
        completer: Arc::clone(pool) as Arc<dyn llm::client::Completer>,
        clock: Arc::new(retry::TokioClock),
        prompt: prompt_config(config),
        thresholds: config.llm.risk_threshold,
        cooldown: config.llm.cooldown,
        hold: config.stream.alert_pause,
        runtime,
        tasks: tasks.clone(),
        shutdown: shutdown.clone(),
    }))
}

/// Runs the service until a signal. The order of start and stop is written out here: parts,
/// cameras, background loops, streaming roles, listener; on the signal, sessions end (root
/// token), cameras stop, and every tracked task gets [`GRACE`] to finish.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    serve_until(config, CancellationToken::new(), |_| {}).await
}

/// [`serve`], which also stops (as on SIGTERM) when `asked` is cancelled, and tells `listening`
/// the address it listens on (`bench latency` runs the service in its own process this way).
pub async fn serve_until(
    config: &Config,
    asked: CancellationToken,
    listening: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let parts = parts(config, &tracker, &shutdown)?;
    log_llm_state(config);
    let (hub, scenes) = start_cameras(config, &parts, &shutdown, &tracker);
    start_background(config, &parts, (&hub, &scenes), &shutdown, &tracker)?;
    let node = if config.kafka.enabled {
        let local = streaming::node::Local {
            hub: Arc::clone(&hub),
            publisher: parts.publisher.clone(),
            fleet: parts.fleet.clone(),
        };
        let stats = streaming::node::start(
            &node_settings(config),
            parts.pool.clone(),
            local,
            &tracker,
            shutdown.child_token(),
            Arc::clone(&parts.metrics.kafka),
        )
        .await?;
        Some(stats)
    } else {
        None
    };
    let signals = Signals::install()?;
    let addr = (config.server.host.as_str(), config.server.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {}:{}", addr.0, addr.1))?;
    let local = listener.local_addr()?;
    println!("traffic-algo listening on http://{local} (WebSocket ws://{local}/ws)");
    tracing::info!(%local, "listening");
    listening(local);
    let state = app_state(config, &parts, (&hub, &scenes), node, (&shutdown, &tracker));
    serve_until_signal(
        listener,
        router(state, &config.server.cors_origins),
        (signals, asked),
        &shutdown,
    )
    .await?;
    stop(&hub, &tracker, &shutdown).await;
    if let Some(sink) = &parts.measure {
        let writer = sink.writer().clone();
        let stats = tokio::task::spawn_blocking(move || writer.close()).await?;
        tracing::info!(
            written = stats.rows_written,
            pending = stats.pending_rows,
            dropped = stats.rows_dropped,
            "measurement database closed"
        );
    }
    Ok(())
}

/// Says once, at start-up, whether the LLM judges too.
fn log_llm_state(config: &Config) {
    if config.llm_active() {
        tracing::info!(
            model = %config.llm.model,
            keys = config.llm.pool.keys.len(),
            "LLM analysis on"
        );
        return;
    }
    let why = if config.llm.enabled {
        "no API key (set DASHSCOPE_API_KEY)"
    } else {
        "llm.enabled = false"
    };
    tracing::info!("LLM analysis off: {why}; rules only");
}

/// The camera hub with every configured scene, and the declared cameras started.
fn start_cameras(
    config: &Config,
    parts: &Parts,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> (Arc<CameraHub>, Arc<SceneBook>) {
    let hub = Arc::new(CameraHub::new(
        Arc::clone(&parts.pipeline),
        config.stream.frame_interval,
        config.stream.max_concurrent_streams,
        config.security.sources.clone(),
        shutdown.child_token(),
        tracker.clone(),
    ));
    if let Some(fleet) = &parts.fleet {
        hub.join_fleet(Arc::clone(fleet) as Arc<dyn camera::hub::FleetLink>);
    }
    let scenes = Arc::new(SceneBook::new(config, Arc::clone(&hub)));
    let declared = declared(parts, &hub);
    for decl in config.cameras.iter().filter(|c| c.enabled) {
        if let Err(e) = declared.declare(decl.id, &decl.url) {
            tracing::error!(camera = decl.id, error = %e, "declared camera not started");
        }
    }
    (hub, scenes)
}

/// Where declared cameras go: the fleet when this process is a detector in streaming mode,
/// else this instance's hub.
fn declared(parts: &Parts, hub: &Arc<CameraHub>) -> Declared {
    match &parts.fleet {
        Some(fleet) => Declared::Fleet(Arc::clone(&fleet.definitions)),
        None => Declared::Local(Arc::clone(hub)),
    }
}

/// The saved frames' retention and the backend link, when configured.
fn start_background(
    config: &Config,
    parts: &Parts,
    (hub, scenes): (&Arc<CameraHub>, &Arc<SceneBook>),
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    if let Some(store) = &parts.store {
        tracker.spawn(crate::storage::keep_within(
            store.clone(),
            config.storage.retention,
            crate::storage::report_saved_frames(Arc::clone(&parts.metrics)),
            shutdown.clone(),
        ));
    }
    if let Some(measure) = &parts.measure {
        // Event snapshots live as long as their events (`measurement.retention_days`).
        let days = u64::from(config.measurement.retention_days);
        let retention = crate::storage::Retention {
            max_age: Some(Duration::from_secs(days * 24 * 3600)),
            max_bytes: None,
        };
        tracker.spawn(crate::storage::keep_within(
            measure.snapshots().clone(),
            retention,
            |pruned| {
                if pruned.deleted > 0 {
                    tracing::info!(deleted = pruned.deleted, "event snapshots pruned");
                }
            },
            shutdown.clone(),
        ));
    }
    if config.backend.active {
        let client = BackendClient::new(config.backend.clone())?;
        tracker.spawn(backend::sync_cameras(
            client.clone(),
            declared(parts, hub),
            Arc::clone(scenes),
            shutdown.clone(),
        ));
        tracker.spawn(backend::post_statistics(
            client,
            Arc::clone(hub),
            parts.measure.clone(),
            shutdown.clone(),
        ));
        tracing::info!(url = %config.backend.base_url, "backend link on");
    }
    Ok(())
}

/// What every HTTP handler and WebSocket session shares.
fn app_state(
    config: &Config,
    parts: &Parts,
    (hub, scenes): (&Arc<CameraHub>, &Arc<SceneBook>),
    node: Option<Arc<streaming::node::NodeStats>>,
    (shutdown, tasks): (&CancellationToken, &TaskTracker),
) -> AppState {
    let dependencies = node.as_ref().map(|n| Arc::clone(&n.dependencies));
    let sources = Sources {
        pool: parts.pool.clone(),
        hub: Some(Arc::clone(hub)),
        node,
        publisher: parts.publisher.as_ref().map(|p| Arc::clone(&p.stats)),
        database: parts.measure.as_ref().map(|m| m.writer().clone()),
    };
    AppState {
        scenes: Arc::clone(scenes),
        hub: Arc::clone(hub),
        started: Instant::now(),
        llm_enabled: config.llm_active(),
        heartbeat: config.server.ws_heartbeat,
        next_conn: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown.clone(),
        policy: config.security.clone(),
        mode: mode(config),
        metrics: Arc::new(crate::metrics::registry(&parts.metrics, sources)),
        stats: Arc::clone(&parts.metrics),
        llm: parts.llm.clone(),
        measure: parts
            .database
            .as_ref()
            .map(|db| crate::http::measure::MeasureApi {
                store: db.clone(),
                bin_seconds: config.measurement.bin_seconds,
            }),
        database: parts.measure.as_ref().map(|m| m.writer().clone()),
        dependencies,
        connections: Arc::new(crate::http::limits::ConnectionLimiter::new(
            config.server.max_ws_connections,
            config.server.max_ws_connections_per_ip,
        )),
        ws_messages_per_second: config.server.ws_messages_per_second,
        trusted_proxies: config.server.trusted_proxies.clone().into(),
        checks: Arc::new(tokio::sync::Semaphore::new(crate::http::ws::MAX_CHECKS)),
        tasks: tasks.clone(),
    }
}

/// Serves `app` until the first signal (or the caller's stop token), which cancels `shutdown`; a
/// second signal exits at once (the one task not tracked: it must outlive the teardown it cuts
/// short).
async fn serve_until_signal(
    listener: TcpListener,
    app: axum::Router,
    (mut signals, asked): (Signals, CancellationToken),
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            () = signals.recv() => {}
            () = asked.cancelled() => {}
        }
        tracing::info!("shutting down: closing sessions, stopping cameras");
        stop.cancel();
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    })
    .await
    .context("server failed")
}

/// The teardown: cancel everything, stop the cameras, wait for the tracked tasks up to
/// [`GRACE`].
async fn stop(hub: &CameraHub, tracker: &TaskTracker, shutdown: &CancellationToken) {
    shutdown.cancel();
    hub.stop_all();
    tracker.close();
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        tracing::warn!("cameras did not stop within {GRACE:?}; exiting anyway");
    }
    tracing::info!("stopped");
}

/// What this process's streaming roles are started with.
fn node_settings(config: &Config) -> streaming::settings::NodeSettings {
    let k = &config.kafka;
    streaming::settings::NodeSettings {
        connection: k.file.connection(&k.bootstrap_servers),
        aggregation_timeout: k.aggregation_timeout,
        roles: k.roles.clone(),
        instance_id: k.instance_id.clone(),
        file: k.file.clone(),
        redis_url: config.redis_url.as_ref().map(|u| u.expose().to_string()),
        prompt: prompt_config(config),
        thresholds: config.llm.risk_threshold,
    }
}
