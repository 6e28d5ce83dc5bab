//! Configuration exactly as SPEC section 2: defaults < `model_config.yaml` < `ALGO_*`
//! environment < command-line flags. [`layers`] gathers raw text per key, [`parse`] turns it
//! into the typed [`Config`] and validates it. Every error names the key and where the bad value
//! came from, fits on one line and makes the process exit with [`EXIT_CONFIG`] before any port is
//! bound.

pub mod api_keys;
pub mod cameras;
pub mod kafka;
pub mod layers;
pub mod parse;
pub mod reference;
pub mod scenes;
pub mod settings;
pub mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use protocol::CameraId;

pub use camera::source::SourcePolicy;
pub use layers::{Layers, Origin, Overrides, RawValue};
pub use llm::keys::RiskThresholds;

/// Exit code for configuration errors (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// A configuration error: the key (or file, or flag) at fault and a plain explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: {key}: {message}")]
pub struct ConfigError {
    /// The setting key, environment variable, flag or file the error is about.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A secret string; its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The listen address and client-facing protocol settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Listen host.
    pub host: String,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// Allowed CORS origins; `*` = any.
    pub cors_origins: Vec<String>,
    /// WebSocket ping interval.
    pub ws_heartbeat: Duration,
    /// WebSocket connections at once.
    pub max_ws_connections: usize,
    /// WebSocket connections at once from one address.
    pub max_ws_connections_per_ip: usize,
    /// Messages a WebSocket client may send per second.
    pub ws_messages_per_second: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client for the per-address limit.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Per-camera pacing.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// Time between analysed frames of one camera.
    pub frame_interval: Duration,
    /// Extra wait after a high-risk frame.
    pub alert_pause: Duration,
    /// Most cameras at once.
    pub max_concurrent_streams: usize,
}

/// The detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Model file name or path (the fp32 model).
    pub name: String,
    /// Which of the model's files runs.
    pub precision: Precision,
    /// Folder of model files.
    pub weights_dir: PathBuf,
    /// Minimum confidence.
    pub confidence: f32,
    /// NMS IoU threshold.
    pub iou: f32,
    /// Input size for dynamic-shape models.
    pub image_size: u32,
    /// Most detections per frame.
    pub max_det: usize,
    /// Inference device (validated to be `cpu`).
    pub device: String,
    /// ONNX Runtime intra-op threads per session, 0 = automatic (see [`inference_layout`]).
    pub threads: usize,
    /// Sessions side by side in the service, 0 = automatic (see [`inference_layout`]).
    pub sessions: usize,
    /// Classes kept, as configured.
    pub classes: Vec<String>,
    /// Explicit ONNX Runtime library (`ORT_DYLIB_PATH`).
    pub runtime_library: Option<PathBuf>,
}

/// `model.precision`: the weights that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// int8 when its file exists and the CPU has VNNI, else fp32.
    Auto,
    /// The named model.
    Fp32,
    /// Its static int8 twin.
    Int8,
}

/// The model file that runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    /// `fp32` or `int8`.
    pub precision: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why this one (for `check-config` and the start-up log).
    pub reason: String,
}

/// Whether this CPU has the int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI) that make
/// int8 inference faster than fp32.
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Picks the weights for `precision`, given whether the CPU has VNNI and whether the int8 file
/// exists; `int8` asked for explicitly runs it even where it would be slower.
pub fn choose(precision: Precision, vnni: bool, int8_exists: bool) -> (bool, &'static str) {
    match precision {
        Precision::Fp32 => (false, "model.precision = fp32"),
        Precision::Int8 => (true, "model.precision = int8"),
        Precision::Auto if !int8_exists => (false, "auto: no int8 model beside it"),
        Precision::Auto if !vnni => (false, "auto: the CPU has no VNNI"),
        Precision::Auto => (true, "auto: the CPU has VNNI and the int8 model exists"),
    }
}

/// Most sessions `model.sessions = 0` starts, whatever the core count: each holds its own
/// activations, and past a few the queue is rarely long enough to keep them all busy.
pub const MAX_AUTO_SESSIONS: usize = 8;

/// The service's inference threads: `(sessions, intra-op threads per session)` for the
/// configured values (0 = automatic) on a machine with `cores` cores. Automatic is one
/// single-threaded session per core: on small CPUs YOLO's small operators scale poorly across
/// threads, and whole frames side by side get ~1.4x more through (docs/benchmarks.md).
pub fn inference_layout(sessions: usize, threads: usize, cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    let sessions = if sessions > 0 {
        sessions
    } else {
        cores.min(MAX_AUTO_SESSIONS)
    };
    let threads = if threads > 0 {
        threads
    } else {
        (cores / sessions).max(1)
    };
    (sessions, threads)
}

/// The machine's cores as the scheduler lets this process use them (1 when unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl ModelConfig {
    /// The service's `(sessions, threads per session)` on this machine.
    pub fn layout(&self) -> (usize, usize) {
        inference_layout(self.sessions, self.threads, available_cores())
    }

    /// The named (fp32) model file: `name` itself when it is a path, else `weights_dir/name`.
    pub fn fp32_path(&self) -> PathBuf {
        let name = PathBuf::from(&self.name);
        if name.components().count() > 1 || name.is_absolute() {
            name
        } else {
            self.weights_dir.join(name)
        }
    }

    /// Its static int8 twin, `<stem>.int8.onnx` beside it (scripts/quantize.py makes it).
    pub fn int8_path(&self) -> PathBuf {
        let fp32 = self.fp32_path();
        let stem = fp32.file_stem().unwrap_or_default().to_string_lossy();
        fp32.with_file_name(format!("{stem}.int8.onnx"))
    }

    /// The model file that runs under `model.precision`, and why.
    pub fn choice(&self) -> ModelChoice {
        let int8 = self.int8_path();
        let (use_int8, why) = choose(self.precision, cpu_has_vnni(), int8.is_file());
        let (precision, path) = if use_int8 {
            ("int8", int8)
        } else {
            ("fp32", self.fp32_path())
        };
        ModelChoice {
            precision,
            path,
            reason: why.to_string(),
        }
    }

    /// The model file that runs (see [`ModelConfig::choice`]).
    pub fn path(&self) -> PathBuf {
        self.choice().path
    }
}

pub use vision::scene::grouping::GroupingConfig;
pub use vision::scene::rules::RulesConfig;

/// Tracking.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingConfig {
    /// Whether objects are tracked.
    pub enabled: bool,
    /// Tracker name (`bytetrack`).
    pub tracker: String,
    /// High-score threshold.
    pub track_thresh: f32,
    /// Largest first-stage match cost.
    pub match_thresh: f32,
    /// Frames at `frame_rate` a lost track is remembered.
    pub track_buffer: u32,
    /// The frame rate ByteTrack's parameters refer to.
    pub frame_rate: f32,
    /// Gate of the distance stage in box diagonals per analysed frame (0 = off).
    pub max_jump: f32,
}

/// The multimodal LLM.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Enabled by configuration (the LLM runs only with a key too, see [`Config::llm_active`]).
    pub enabled: bool,
    /// OpenAI-compatible base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a failure.
    pub max_retry: u32,
    /// Per-camera pause between calls.
    pub cooldown: Duration,
    /// Vision tokens one group image may use.
    pub max_image_tokens: u64,
    /// Confidence -> level mapping.
    pub risk_threshold: RiskThresholds,
    /// The single API key, when set.
    pub api_key: Option<Secret>,
    /// The key pool: the keys of `llm.api_keys_file`, else the single key.
    pub pool: api_keys::KeyPoolConfig,
}

/// Streaming mode.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// Whether streaming mode is on.
    pub enabled: bool,
    /// Broker list.
    pub bootstrap_servers: String,
    /// How long an aggregation waits before publishing partial results.
    pub aggregation_timeout: Duration,
    /// What this process does.
    pub roles: Vec<kafka::Role>,
    /// This process's name (results for its cameras come back to it).
    pub instance_id: String,
    /// The topic file (read only when streaming is on).
    pub file: kafka::KafkaFile,
}

/// The Spring Boot backend.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// Whether the backend is used: `backend.base_url` was set explicitly.
    pub active: bool,
    /// Base URL.
    pub base_url: String,
    /// Path of the camera list (GET).
    pub cameras_path: String,
    /// Path statistics are POSTed to.
    pub stats_path: String,
    /// How often the camera list is fetched.
    pub refresh: Duration,
    /// How often statistics are posted.
    pub stats_interval: Duration,
    /// Field of a camera entry holding its id.
    pub id_field: String,
    /// Field holding its stream URL.
    pub url_field: String,
    /// Field holding whether it is enabled (absent = enabled).
    pub enabled_field: String,
    /// Header that carries the token.
    pub jwt_header: String,
    /// The token, when set.
    pub jwt_token: Option<Secret>,
}

/// Who may use the service and what it may open.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// Bearer token required on `/ws` and `/api/*` when set.
    pub auth_token: Option<Secret>,
    /// Which camera URLs clients may open.
    pub sources: SourcePolicy,
}

/// Scene geometry (SPEC 9).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenesConfig {
    /// The folder of `<cameraId>.yaml` scene files.
    pub dir: PathBuf,
    /// Largest calibration reprojection error accepted, pixels.
    pub max_error_px: f64,
    /// The scene files found there, checked, by camera id.
    pub files: Vec<(CameraId, scenes::SceneFile)>,
}

/// Frames kept on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Whether analysed frames are saved.
    pub save_raw_frames: bool,
    /// Where they go.
    pub save_dir: PathBuf,
    /// How much of them to keep.
    pub retention: crate::storage::Retention,
}

/// Traffic measurement and its database (SPEC 9).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementConfig {
    /// Whether measures and events are kept.
    pub enabled: bool,
    /// Bin length, seconds (a divisor of a day).
    pub bin_seconds: u32,
    /// Days of bins and events kept.
    pub retention_days: u32,
    /// The embedded SQLite database.
    pub database_path: PathBuf,
    /// A PostgreSQL database instead.
    pub database_url: Option<Secret>,
    /// Where event snapshots go.
    pub snapshot_dir: PathBuf,
}

/// Logging.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A tracing filter (`info`, `debug,ort=warn`, ...).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listen address and protocol.
    pub server: ServerConfig,
    /// Camera pacing.
    pub stream: StreamConfig,
    /// Detector.
    pub model: ModelConfig,
    /// Tracking.
    pub tracking: TrackingConfig,
    /// Grouping.
    pub grouping: GroupingConfig,
    /// Rule thresholds.
    pub rules: RulesConfig,
    /// LLM.
    pub llm: LlmConfig,
    /// Streaming mode.
    pub kafka: KafkaConfig,
    /// Redis URL for streaming mode.
    pub redis_url: Option<Secret>,
    /// Backend.
    pub backend: BackendConfig,
    /// Access control.
    pub security: SecurityConfig,
    /// Saved frames.
    pub storage: StorageConfig,
    /// Scene geometry.
    pub scenes: ScenesConfig,
    /// Traffic measurement and its database.
    pub measurement: MeasurementConfig,
    /// Logging.
    pub log: LogConfig,
    /// Cameras declared in `cameras.yaml` and by `--camera`.
    pub cameras: Vec<cameras::CameraDecl>,
}

impl Config {
    /// Loads the configuration from `env` and `overrides` (and the YAML file they name).
    pub fn load(
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<(Self, Layers), ConfigError> {
        let layers = Layers::collect(env, overrides)?;
        let runtime_library = env
            .get(settings::ENV_ORT_DYLIB_PATH)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut config = parse::build(&layers, runtime_library)?;
        let file = layers
            .values
            .get("cameras.file")
            .map(|v| v.text.clone())
            .unwrap_or_default();
        config.cameras = cameras::load(
            std::path::Path::new(&file),
            overrides.cameras(),
            config.scenes.max_error_px,
        )?;
        let enabled = config.cameras.iter().filter(|c| c.enabled).count();
        // In a fleet (streaming mode with the detector role) the declared cameras are shared
        // out between the instances: the cap is on what one instance runs.
        let fleet = config.kafka.enabled && config.kafka.roles.contains(&kafka::Role::Detector);
        if enabled > config.stream.max_concurrent_streams && !fleet {
            return Err(ConfigError::new(
                "stream.max_concurrent_streams",
                format!(
                    "{enabled} enabled cameras are declared (cameras file and --camera), more than the {} that may run at once",
                    config.stream.max_concurrent_streams
                ),
            ));
        }
        config.scenes.files = scenes::load_dir(&config.scenes.dir, config.scenes.max_error_px)?;
        let keys_file = layers
            .values
            .get("llm.api_keys_file")
            .map(|v| v.text.clone())
            .unwrap_or_default();
        config.llm.pool = api_keys::load(std::path::Path::new(&keys_file), env)?;
        if config.kafka.enabled {
            let kafka_file = layers
                .values
                .get("kafka.config_file")
                .map(|v| v.text.clone())
                .unwrap_or_default();
            config.kafka.file = kafka::load(std::path::Path::new(&kafka_file), env)?;
        }
        if config.llm.pool.keys.is_empty()
            && let Some(key) = config.llm.api_key.clone()
        {
            config
                .llm
                .pool
                .keys
                .push(api_keys::KeySpec::single(api_keys::ApiKey::new(
                    key.expose(),
                )));
        }
        Ok((config, layers))
    }

    /// Whether the LLM will be called: enabled and a key present.
    pub fn llm_active(&self) -> bool {
        self.llm.enabled && !self.llm.pool.keys.is_empty()
    }
}

#[cfg(test)]
mod tests;
