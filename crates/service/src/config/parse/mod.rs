//! Typing and validation: raw text per key becomes the [`Config`]. Each rule lives in one place;
//! each failure names the key, the offending value (unless secret) and the layer it came from.

mod reader;

use std::path::PathBuf;
use std::time::Duration;

use super::{
    BackendConfig, Config, ConfigError, GroupingConfig, KafkaConfig, Layers, LlmConfig, LogConfig,
    LogFormat, MeasurementConfig, ModelConfig, Precision, RiskThresholds, RulesConfig, Secret,
    SecurityConfig, ServerConfig, StorageConfig, StreamConfig, TrackingConfig,
};
use reader::Reader;

/// Source URL schemes the service knows how to open.
pub const KNOWN_SCHEMES: &[&str] = &["rtsp", "rtsps", "http", "https", "file"];

/// A comma list of IP addresses and CIDR ranges.
fn networks(r: &Reader<'_>, key: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    r.list(key)
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| r.err(key, format!("`{item}` is not an IP address or CIDR range")))
        })
        .collect()
}

/// Builds and validates the typed configuration. The sections are read in a fixed order, so that
/// with several bad values the one named is always the same.
pub fn build(layers: &Layers, runtime_library: Option<PathBuf>) -> Result<Config, ConfigError> {
    let r = Reader { layers };
    let server = server(&r)?;
    let stream = stream(&r)?;
    let model = model(&r, runtime_library)?;
    let tracking = tracking(&r)?;
    let rules = rules(&r)?;
    let grouping = grouping(&r)?;
    let llm = llm(&r)?;
    let kafka = kafka(&r)?;
    let redis_url = redis_url(&r, kafka.enabled)?;
    let backend = backend(&r)?;
    let security = security(&r)?;
    let storage = storage(&r)?;
    let scenes = super::ScenesConfig {
        dir: PathBuf::from(r.string("scenes.dir")?),
        max_error_px: r.number("scenes.max_reprojection_error_px", 0.1, 1000.0)?,
        files: Vec::new(),
    };
    let measurement = measurement(&r)?;
    let log = log(&r)?;
    Ok(Config {
        server,
        stream,
        model,
        tracking,
        grouping,
        rules,
        llm,
        kafka,
        redis_url,
        backend,
        security,
        storage,
        scenes,
        measurement,
        log,
        cameras: Vec::new(),
    })
}

/// `server.*`: the listen address and the client limits.
fn server(r: &Reader<'_>) -> Result<ServerConfig, ConfigError> {
    Ok(ServerConfig {
        host: host(r)?,
        port: r.integer("server.port", 0, 65535)? as u16,
        cors_origins: r.list("server.cors_origins"),
        ws_heartbeat: r.seconds("server.ws_heartbeat_seconds", false, 3600.0)?,
        max_ws_connections: r.integer("server.max_ws_connections", 1, 100_000)? as usize,
        max_ws_connections_per_ip: r.integer("server.max_ws_connections_per_ip", 1, 100_000)?
            as usize,
        ws_messages_per_second: r.integer("server.ws_messages_per_second", 1, 10_000)? as u32,
        trusted_proxies: networks(r, "server.trusted_proxies")?,
    })
}

/// `stream.*`: sampling and concurrency of the cameras.
fn stream(r: &Reader<'_>) -> Result<StreamConfig, ConfigError> {
    Ok(StreamConfig {
        frame_interval: r.seconds("stream.frame_interval", false, 3600.0)?,
        alert_pause: r.seconds("stream.alert_pause_seconds", true, 3600.0)?,
        max_concurrent_streams: r.integer("stream.max_concurrent_streams", 1, 1024)? as usize,
    })
}

/// `model.*` and `classes.include`: the detector.
fn model(r: &Reader<'_>, runtime_library: Option<PathBuf>) -> Result<ModelConfig, ConfigError> {
    let classes = r.list("classes.include");
    if classes.is_empty() {
        return Err(r.err("classes.include", "must name at least one class"));
    }
    let device = r.string("model.device")?.to_ascii_lowercase();
    if device != "cpu" {
        return Err(r.err(
            "model.device",
            "is not available: this build runs inference on the CPU only (use cpu)",
        ));
    }
    let image_size = r.integer("model.image_size", 32, 4096)? as u32;
    if !image_size.is_multiple_of(32) {
        return Err(r.err("model.image_size", "must be a multiple of 32"));
    }
    Ok(ModelConfig {
        name: r.string("model.name")?,
        precision: match r
            .one_of("model.precision", &["auto", "fp32", "int8"])?
            .as_str()
        {
            "fp32" => Precision::Fp32,
            "int8" => Precision::Int8,
            _ => Precision::Auto,
        },
        weights_dir: PathBuf::from(r.string("model.weights_dir")?),
        confidence: r.number("model.confidence_threshold", 0.0, 1.0)? as f32,
        iou: r.number("model.iou_threshold", 0.0, 1.0)? as f32,
        image_size,
        max_det: r.integer("model.max_det", 1, 10_000)? as usize,
        device,
        threads: r.integer("model.threads", 0, 256)? as usize,
        sessions: r.integer("model.sessions", 0, 64)? as usize,
        classes,
        runtime_library,
    })
}

/// `tracking.*`: the tracker.
fn tracking(r: &Reader<'_>) -> Result<TrackingConfig, ConfigError> {
    Ok(TrackingConfig {
        enabled: r.bool("tracking.enabled")?,
        tracker: r.one_of("tracking.tracker", &["bytetrack"])?,
        track_thresh: r.number("tracking.track_thresh", 0.0, 1.0)? as f32,
        match_thresh: r.number("tracking.match_thresh", 0.0, 1.0)? as f32,
        track_buffer: r.integer("tracking.track_buffer", 0, 100_000)? as u32,
        frame_rate: r.number("tracking.frame_rate", 0.1, 1000.0)? as f32,
        max_jump: r.number("tracking.max_jump", 0.0, 100.0)? as f32,
    })
}

/// `rules.*`: the rule thresholds.
fn rules(r: &Reader<'_>) -> Result<RulesConfig, ConfigError> {
    let rules = RulesConfig {
        enabled: r.bool("rules.enabled")?,
        stationary_speed: r.number("rules.stationary_speed", 0.0, 100.0)? as f32,
        moving_speed: r.number("rules.moving_speed", 0.0, 100.0)? as f32,
        tailgating_headway: r.number("rules.tailgating.headway_seconds", 0.0, 60.0)? as f32,
        tailgating_min_kmh: r.number("rules.tailgating.min_speed_kmh", 0.0, 300.0)? as f32,
        pedestrian_horizon: r.number("rules.pedestrian.horizon_seconds", 0.1, 60.0)? as f32,
        wrong_way_min_samples: r.integer("rules.wrong_way.min_samples", 1, 1_000_000)? as u32,
        hard_braking_decel: r.number("rules.sudden_stop.deceleration", 0.5, 20.0)? as f32,
        hard_braking_min_kmh: r.number("rules.sudden_stop.min_speed_kmh", 0.0, 300.0)? as f32,
        dwell_seconds: r.number("rules.illegal_stop.dwell_seconds", 0.0, 86_400.0)? as f32,
        congestion_min_vehicles: r.integer("rules.congestion.min_vehicles", 1, 10_000)? as usize,
    };
    if rules.moving_speed < rules.stationary_speed {
        return Err(r.err(
            "rules.moving_speed",
            "must not be below rules.stationary_speed",
        ));
    }
    Ok(rules)
}

/// `post_processing.*`: traffic groups.
fn grouping(r: &Reader<'_>) -> Result<GroupingConfig, ConfigError> {
    Ok(GroupingConfig {
        distance_threshold: r.number("post_processing.distance_threshold", 1.0, 10_000.0)? as f32,
        min_group_size: r.integer("post_processing.min_group_size", 1, 1000)? as usize,
        crop_margin: r.integer("post_processing.crop_margin", 0, 1000)? as u32,
    })
}

/// `llm.*`: the multimodal LLM (its key pool is loaded later, from its own file).
fn llm(r: &Reader<'_>) -> Result<LlmConfig, ConfigError> {
    Ok(LlmConfig {
        enabled: r.bool("llm.enabled")?,
        base_url: r.url("llm.base_url", &["http", "https"])?,
        model: r.string("llm.model")?,
        timeout: r.seconds("llm.timeout", false, 600.0)?,
        max_retry: r.integer("llm.max_retry", 0, 10)? as u32,
        cooldown: r.seconds("llm.cooldown_seconds", true, 3600.0)?,
        max_image_tokens: r.integer("llm.max_image_tokens", 4, 100_000)?,
        risk_threshold: risk_thresholds(r)?,
        api_key: r.secret("llm.api_key"),
        pool: Default::default(),
    })
}

/// `kafka.*`: streaming mode (the client file is loaded later, when it is on).
fn kafka(r: &Reader<'_>) -> Result<KafkaConfig, ConfigError> {
    Ok(KafkaConfig {
        enabled: r.bool("kafka.enabled")?,
        bootstrap_servers: r.string("kafka.bootstrap_servers")?,
        aggregation_timeout: r.seconds("kafka.aggregation_timeout_seconds", false, 3600.0)?,
        roles: crate::config::kafka::parse_roles(r.text("kafka.roles"))
            .map_err(|m| r.err("kafka.roles", m))?,
        instance_id: match r.text("kafka.instance_id").trim() {
            "" => default_instance_id(r.integer("server.port", 0, 65535)?),
            id => id.to_string(),
        },
        file: Default::default(),
    })
}

/// `redis.url`: optional, except in streaming mode (`kafka_enabled`).
fn redis_url(r: &Reader<'_>, kafka_enabled: bool) -> Result<Option<Secret>, ConfigError> {
    match r.secret("redis.url") {
        Some(url) => {
            let scheme_ok = ["redis://", "rediss://", "unix://"]
                .iter()
                .any(|s| url.expose().to_ascii_lowercase().starts_with(s));
            if !scheme_ok {
                return Err(r.err(
                    "redis.url",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
            Ok(Some(url))
        }
        None if kafka_enabled => Err(r.err(
            "redis.url",
            "streaming mode needs Redis: set ALGO_REDIS_URL (redis://HOST:PORT/)",
        )),
        None => Ok(None),
    }
}

/// `backend.*`: the camera list and statistics endpoints; active when its URL was set.
fn backend(r: &Reader<'_>) -> Result<BackendConfig, ConfigError> {
    Ok(BackendConfig {
        active: r
            .layers
            .values
            .get("backend.base_url")
            .is_some_and(|v| v.origin != super::Origin::Default),
        base_url: r.url("backend.base_url", &["http", "https"])?,
        cameras_path: path(r, "backend.cameras_path")?,
        stats_path: path(r, "backend.stats_path")?,
        refresh: r.seconds("backend.refresh_seconds", false, 86_400.0)?,
        stats_interval: r.seconds("backend.stats_interval_seconds", false, 86_400.0)?,
        id_field: r.string("backend.camera_id_field")?,
        url_field: r.string("backend.camera_url_field")?,
        enabled_field: r.string("backend.camera_enabled_field")?,
        jwt_header: header_name(r, "backend.jwt_header")?,
        jwt_token: r.secret("backend.jwt_token"),
    })
}

/// `security.*`: the token and which sources may be opened.
fn security(r: &Reader<'_>) -> Result<SecurityConfig, ConfigError> {
    let schemes: Vec<String> = r
        .list("security.allowed_source_schemes")
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if schemes.is_empty() {
        return Err(r.err(
            "security.allowed_source_schemes",
            "must allow at least one scheme",
        ));
    }
    if let Some(bad) = schemes
        .iter()
        .find(|s| !KNOWN_SCHEMES.contains(&s.as_str()))
    {
        return Err(r.err(
            "security.allowed_source_schemes",
            format!(
                "has unknown scheme `{bad}`; known: {}",
                KNOWN_SCHEMES.join(", ")
            ),
        ));
    }
    Ok(SecurityConfig {
        auth_token: r.secret("security.auth_token"),
        sources: super::SourcePolicy {
            allowed_source_schemes: schemes,
            allowed_source_hosts: r
                .list("security.allowed_source_hosts")
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        },
    })
}

/// `storage.*`: saved frames and their retention.
fn storage(r: &Reader<'_>) -> Result<StorageConfig, ConfigError> {
    Ok(StorageConfig {
        save_raw_frames: r.bool("storage.save_raw_frames")?,
        save_dir: PathBuf::from(r.string("storage.save_dir")?),
        retention: crate::storage::Retention {
            max_age: match r.integer("storage.retention_days", 0, 36_500)? {
                0 => None,
                days => Some(Duration::from_secs(days * 24 * 3600)),
            },
            max_bytes: match r.integer("storage.max_size_mb", 0, 1 << 40)? {
                0 => None,
                mb => Some(mb << 20),
            },
        },
    })
}

/// `measurement.*`: bins, retention and the database.
fn measurement(r: &Reader<'_>) -> Result<MeasurementConfig, ConfigError> {
    let bin_seconds = r.integer("measurement.bin_seconds", 60, 86_400)? as u32;
    if 86_400 % bin_seconds != 0 {
        return Err(r.err(
            "measurement.bin_seconds",
            "must divide a day (60, 300, 900, 3600, ...) so that bins align with the clock",
        ));
    }
    let database_url = r.secret("measurement.database_url");
    if let Some(url) = &database_url {
        let lower = url.expose().to_ascii_lowercase();
        if !(lower.starts_with("postgresql://") || lower.starts_with("postgres://")) {
            return Err(r.err(
                "measurement.database_url",
                "must be a PostgreSQL URL: postgresql://USER:PASSWORD@HOST:PORT/DB",
            ));
        }
    }
    Ok(MeasurementConfig {
        enabled: r.bool("measurement.enabled")?,
        bin_seconds,
        retention_days: r.integer("measurement.retention_days", 1, 36_500)? as u32,
        database_path: PathBuf::from(r.string("measurement.database_path")?),
        database_url,
        snapshot_dir: PathBuf::from(r.string("measurement.snapshot_dir")?),
    })
}

/// `log.*`: level (or filter) and format.
fn log(r: &Reader<'_>) -> Result<LogConfig, ConfigError> {
    let level = r.string("log.level")?;
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(r.err(
            "log.level",
            "must be trace, debug, info, warn, error or a tracing filter",
        ));
    }
    Ok(LogConfig {
        level,
        format: match r.one_of("log.format", &["text", "json"])?.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        },
    })
}

fn host(r: &Reader<'_>) -> Result<String, ConfigError> {
    let host = r.string("server.host")?;
    let valid = host.parse::<std::net::IpAddr>().is_ok()
        || host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(host)
    } else {
        Err(r.err("server.host", "must be an IP address or host name"))
    }
}

fn path(r: &Reader<'_>, key: &str) -> Result<String, ConfigError> {
    let p = r.string(key)?;
    if p.starts_with('/') && !p.contains(char::is_whitespace) {
        Ok(p)
    } else {
        Err(r.err(key, "must be a URL path starting with /"))
    }
}

fn header_name(r: &Reader<'_>, key: &str) -> Result<String, ConfigError> {
    let name = r.string(key)?;
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    {
        Ok(name)
    } else {
        Err(r.err(key, "must be an HTTP header name"))
    }
}

/// `host-port`: unique among the processes of one host (two cannot listen on one port) and the
/// same after a restart, so a restarted instance keeps its consumer groups and their offsets
/// instead of replaying the retained messages into a new group. On port 0 (any free port)
/// nothing stays the same: `host-pid`.
fn default_instance_id(port: u64) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    if port == 0 {
        format!("{host}-pid{}", std::process::id())
    } else {
        format!("{host}-{port}")
    }
}

fn risk_thresholds(r: &Reader<'_>) -> Result<RiskThresholds, ConfigError> {
    let t = RiskThresholds {
        low: r.number("llm.risk_threshold.low", 0.0, 1.0)? as f32,
        medium: r.number("llm.risk_threshold.medium", 0.0, 1.0)? as f32,
        high: r.number("llm.risk_threshold.high", 0.0, 1.0)? as f32,
    };
    if t.low > t.medium {
        return Err(r.err(
            "llm.risk_threshold.medium",
            "must not be below llm.risk_threshold.low",
        ));
    }
    if t.medium > t.high {
        return Err(r.err(
            "llm.risk_threshold.high",
            "must not be below llm.risk_threshold.medium",
        ));
    }
    Ok(t)
}
