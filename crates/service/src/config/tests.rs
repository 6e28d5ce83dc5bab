//! Configuration tests: precedence of the four layers, the committed `model_config.yaml`, and
//! every kind of configuration error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::settings::SETTINGS;
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An environment whose config path points at `path` (which may not exist).
fn env_with_file(path: &Path, pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut e = env(pairs);
    e.insert("ALGO_MODEL_CONFIG_PATH".into(), path.display().to_string());
    e
}

fn no_file() -> PathBuf {
    PathBuf::from("/nonexistent/traffic-algo/model_config.yaml")
}

fn load(env: &HashMap<String, String>, o: &Overrides) -> Result<Config, ConfigError> {
    Config::load(env, o).map(|(c, _)| c)
}

fn yaml(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

fn load_err(e: &HashMap<String, String>) -> ConfigError {
    load(e, &Overrides::default()).unwrap_err()
}

#[test]
fn defaults_match_the_spec() {
    let c = load(&env_with_file(&no_file(), &[]), &Overrides::default()).unwrap();
    assert_eq!((c.server.host.as_str(), c.server.port), ("0.0.0.0", 5000));
    assert_eq!(c.stream.frame_interval, Duration::from_millis(1800));
    assert_eq!(c.stream.alert_pause, Duration::from_secs(3));
    assert_eq!(c.stream.max_concurrent_streams, 16);
    assert_eq!(c.model.path(), PathBuf::from("weights/yolov8n.onnx"));
    assert_eq!((c.model.confidence, c.model.iou), (0.35, 0.5));
    assert_eq!((c.model.image_size, c.model.max_det), (640, 200));
    assert_eq!(c.model.classes.len(), 8);
    assert!(c.model.classes.contains(&"traffic light".to_string()));
    assert!(c.tracking.enabled);
    assert_eq!(c.grouping.distance_threshold, 150.0);
    assert_eq!((c.grouping.min_group_size, c.grouping.crop_margin), (2, 12));
    assert!(c.llm.enabled && !c.llm_active(), "LLM is off without a key");
    assert_eq!(c.llm.model, "qwen-vl-plus");
    assert_eq!(c.llm.timeout, Duration::from_secs(30));
    assert_eq!(
        c.llm.risk_threshold,
        RiskThresholds {
            low: 0.45,
            medium: 0.65,
            high: 0.80
        }
    );
    assert!(!c.kafka.enabled);
    assert_eq!(c.kafka.bootstrap_servers, "localhost:9092");
    assert_eq!(c.redis_url, None);
    assert_eq!(c.backend.jwt_header, "Authorization");
    assert!(
        !c.backend.active,
        "the backend is used only when its URL is set"
    );
    assert_eq!(
        (
            c.backend.cameras_path.as_str(),
            c.backend.url_field.as_str()
        ),
        ("/cameras", "rtspUrl")
    );
    assert_eq!(
        c.security.sources.allowed_source_schemes,
        ["rtsp", "rtsps", "http", "https"]
    );
    assert!(c.security.sources.allowed_source_hosts.is_empty());
    assert_eq!(c.server.ws_heartbeat, Duration::from_secs(30));
    assert!(!c.storage.save_raw_frames);
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(
        c.storage.retention,
        crate::storage::Retention {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_bytes: Some(10 << 30),
        }
    );
    assert_eq!(
        (c.log.level.as_str(), c.log.format),
        ("info", LogFormat::Text)
    );
}

#[test]
fn committed_model_config_yaml_lists_every_key_at_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../model_config.yaml");
    let (from_file, layers) =
        Config::load(&env_with_file(&path, &[]), &Overrides::default()).unwrap();
    let defaults = load(&env_with_file(&no_file(), &[]), &Overrides::default()).unwrap();
    assert_eq!(from_file, defaults);
    // backend.base_url is shown commented out: writing it switches the backend link on.
    for s in SETTINGS
        .iter()
        .filter(|s| s.in_yaml && s.key != "backend.base_url")
    {
        let origin = &layers.values[s.key].origin;
        assert!(
            matches!(origin, Origin::File(_)),
            "{} missing from model_config.yaml",
            s.key
        );
    }
}

#[test]
fn each_layer_overrides_the_one_below() {
    let file = yaml("model:\n  confidence_threshold: 0.4\n  iou_threshold: 0.6\n  max_det: 50\n");
    let e = env_with_file(
        file.path(),
        &[("ALGO_YOLO_IOU", "0.7"), ("ALGO_YOLO_MAX_DET", "60")],
    );
    let mut o = Overrides::default();
    o.set("model.max_det", "70", "--set model.max_det");
    let (c, layers) = Config::load(&e, &o).unwrap();
    assert_eq!(c.model.image_size, 640); // default
    assert_eq!(c.model.confidence, 0.4); // file over default
    assert_eq!(c.model.iou, 0.7); // env over file
    assert_eq!(c.model.max_det, 70); // flag over env
    assert_eq!(layers.values["model.image_size"].origin, Origin::Default);
    assert_eq!(
        layers.values["model.iou_threshold"].origin,
        Origin::Env("ALGO_YOLO_IOU")
    );
    assert!(matches!(
        layers.values["model.max_det"].origin,
        Origin::Flag(_)
    ));
}

#[test]
fn config_path_comes_from_flag_then_env() {
    let a = yaml("server:\n  port: 6001\n");
    let b = yaml("server:\n  port: 6002\n");
    let e = env_with_file(a.path(), &[]);
    assert_eq!(load(&e, &Overrides::default()).unwrap().server.port, 6001);
    let mut o = Overrides::default();
    o.set_config_path(b.path().to_path_buf());
    assert_eq!(load(&e, &o).unwrap().server.port, 6002);
}

#[test]
fn class_lists_from_yaml_env_and_underscores() {
    let file = yaml("classes:\n  include: [car, traffic_light]\n");
    let c = load(&env_with_file(file.path(), &[]), &Overrides::default()).unwrap();
    assert_eq!(c.model.classes, ["car", "traffic_light"]);
    let c = load(
        &env_with_file(
            file.path(),
            &[("ALGO_ALLOWED_CLASSES", " bus , stop_sign ,")],
        ),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.model.classes, ["bus", "stop_sign"]);
}

#[test]
fn secrets_come_from_env_or_env_named_files_and_never_print() {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), "sk-from-file\n").unwrap();
    let e = env_with_file(
        &no_file(),
        &[
            ("ALGO_LLM_API_KEY_FILE", key_file.path().to_str().unwrap()),
            ("ALGO_AUTH_TOKEN", "t0k"),
        ],
    );
    let c = load(&e, &Overrides::default()).unwrap();
    assert_eq!(c.llm.api_key.as_ref().unwrap().expose(), "sk-from-file");
    assert!(c.llm_active());
    assert_eq!(c.security.auth_token.as_ref().unwrap().expose(), "t0k");
    assert!(!format!("{c:?}").contains("sk-from-file"));
    // The plain variable wins over the file; DASHSCOPE_API_KEY is accepted.
    let e = env_with_file(&no_file(), &[("DASHSCOPE_API_KEY", "sk-ds")]);
    assert_eq!(
        load(&e, &Overrides::default())
            .unwrap()
            .llm
            .api_key
            .unwrap()
            .expose(),
        "sk-ds"
    );
}

#[test]
fn model_name_may_be_a_path() {
    let e = env_with_file(
        &no_file(),
        &[("ALGO_YOLO_MODEL_NAME", "/models/custom.onnx")],
    );
    let c = load(&e, &Overrides::default()).unwrap();
    assert_eq!(c.model.path(), PathBuf::from("/models/custom.onnx"));
    let e = env_with_file(
        &no_file(),
        &[
            ("ALGO_WEIGHTS_DIR", "/w"),
            ("ALGO_YOLO_MODEL_NAME", "m.onnx"),
        ],
    );
    assert_eq!(
        load(&e, &Overrides::default()).unwrap().model.path(),
        PathBuf::from("/w/m.onnx")
    );
}

#[test]
fn inference_sessions_default_to_one_single_threaded_session_per_core() {
    assert_eq!(inference_layout(0, 0, 2), (2, 1));
    assert_eq!(inference_layout(0, 0, 1), (1, 1));
    assert_eq!(inference_layout(0, 0, 0), (1, 1), "unknown core count");
    assert_eq!(inference_layout(0, 0, 32), (MAX_AUTO_SESSIONS, 4));
    // Either one set: the other shares out the cores.
    assert_eq!(inference_layout(1, 0, 8), (1, 8));
    assert_eq!(inference_layout(3, 0, 8), (3, 2));
    assert_eq!(inference_layout(0, 2, 8), (8, 2));
    assert_eq!(
        inference_layout(4, 4, 2),
        (4, 4),
        "explicit values are kept"
    );
    let e = env_with_file(
        &no_file(),
        &[
            ("ALGO_INFERENCE_SESSIONS", "3"),
            ("ALGO_INFERENCE_THREADS", "2"),
        ],
    );
    let m = load(&e, &Overrides::default()).unwrap().model;
    assert_eq!((m.sessions, m.layout()), (3, (3, 2)));
    let e = env_with_file(&no_file(), &[("ALGO_INFERENCE_SESSIONS", "65")]);
    assert!(load(&e, &Overrides::default()).is_err());
}

#[test]
fn precision_picks_the_int8_twin_only_where_it_pays() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_str().unwrap();
    let config = |precision: &str| {
        let e = env_with_file(
            &no_file(),
            &[("ALGO_WEIGHTS_DIR", w), ("ALGO_YOLO_PRECISION", precision)],
        );
        load(&e, &Overrides::default()).unwrap().model
    };
    let m = config("auto");
    assert_eq!(m.precision, Precision::Auto);
    assert_eq!(m.int8_path(), dir.path().join("yolov8n.int8.onnx"));
    // No twin: fp32 whatever the CPU.
    assert_eq!(m.choice().precision, "fp32");
    assert_eq!(m.path(), dir.path().join("yolov8n.onnx"));
    std::fs::write(m.int8_path(), b"").unwrap();
    let expected = if cpu_has_vnni() { "int8" } else { "fp32" };
    assert_eq!(config("auto").choice().precision, expected);
    assert_eq!(config("INT8").path(), dir.path().join("yolov8n.int8.onnx"));
    assert_eq!(config("fp32").path(), dir.path().join("yolov8n.onnx"));
    assert_eq!(
        choose(Precision::Auto, true, true),
        (true, "auto: the CPU has VNNI and the int8 model exists")
    );
    assert!(!choose(Precision::Auto, false, true).0);
    assert!(!choose(Precision::Auto, true, false).0);
    assert!(
        choose(Precision::Int8, false, false).0,
        "asked for: runs (or fails to load)"
    );
    let e = env_with_file(&no_file(), &[("ALGO_YOLO_PRECISION", "fp16")]);
    assert_eq!(
        load(&e, &Overrides::default()).unwrap_err().to_string(),
        "config error: model.precision: \"fp16\" (from ALGO_YOLO_PRECISION) must be one of: auto, fp32, int8"
    );
}

/// Every bad value gives one line naming the key (and where the value came from).
#[test]
fn every_bad_value_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("ALGO_SERVER_HOST", "bad host!", "server.host"),
        ("ALGO_SERVER_PORT", "70000", "server.port"),
        ("ALGO_SERVER_PORT", "http", "server.port"),
        (
            "ALGO_WS_HEARTBEAT_SECONDS",
            "0",
            "server.ws_heartbeat_seconds",
        ),
        ("ALGO_FRAME_INTERVAL", "-1", "stream.frame_interval"),
        ("ALGO_FRAME_INTERVAL", "0", "stream.frame_interval"),
        ("ALGO_FRAME_INTERVAL", "NaN", "stream.frame_interval"),
        (
            "ALGO_ALERT_PAUSE_SECONDS",
            "soon",
            "stream.alert_pause_seconds",
        ),
        (
            "ALGO_MAX_CONCURRENT_STREAMS",
            "0",
            "stream.max_concurrent_streams",
        ),
        ("ALGO_ALLOWED_CLASSES", " , ", "classes.include"),
        ("ALGO_YOLO_MODEL_NAME", "", "model.name"),
        ("ALGO_YOLO_CONFIDENCE", "1.5", "model.confidence_threshold"),
        ("ALGO_YOLO_IOU", "abc", "model.iou_threshold"),
        ("ALGO_YOLO_IMAGE_SIZE", "650", "model.image_size"),
        ("ALGO_YOLO_MAX_DET", "0", "model.max_det"),
        ("ALGO_YOLO_DEVICE", "cuda", "model.device"),
        ("ALGO_INFERENCE_THREADS", "-2", "model.threads"),
        ("ALGO_TRACKING_ENABLED", "maybe", "tracking.enabled"),
        ("ALGO_TRACKER_TYPE", "sort", "tracking.tracker"),
        (
            "ALGO_GROUP_DISTANCE_THRESHOLD",
            "0",
            "post_processing.distance_threshold",
        ),
        (
            "ALGO_GROUP_MIN_SIZE",
            "two",
            "post_processing.min_group_size",
        ),
        (
            "ALGO_GROUP_CROP_MARGIN",
            "-5",
            "post_processing.crop_margin",
        ),
        ("ALGO_LLM_ENABLED", "yes please", "llm.enabled"),
        ("ALGO_LLM_BASE_URL", "ftp://x", "llm.base_url"),
        ("ALGO_LLM_MODEL", " ", "llm.model"),
        ("ALGO_LLM_TIMEOUT", "0", "llm.timeout"),
        ("ALGO_LLM_MAX_RETRY", "99", "llm.max_retry"),
        ("ALGO_LLM_COOLDOWN_SECONDS", "-3", "llm.cooldown_seconds"),
        ("ALGO_ENABLE_KAFKA_STREAMING", "2", "kafka.enabled"),
        (
            "ALGO_KAFKA_BOOTSTRAP_SERVERS",
            "",
            "kafka.bootstrap_servers",
        ),
        (
            "ALGO_AGGREGATION_TIMEOUT_SECONDS",
            "0",
            "kafka.aggregation_timeout_seconds",
        ),
        ("ALGO_REDIS_URL", "localhost:6379", "redis.url"),
        (
            "ALGO_BACKEND_BASE_URL",
            "localhost:9090",
            "backend.base_url",
        ),
        ("ALGO_JWT_HEADER", "Bad Header", "backend.jwt_header"),
        (
            "ALGO_BACKEND_CAMERAS_PATH",
            "cameras",
            "backend.cameras_path",
        ),
        (
            "ALGO_BACKEND_REFRESH_SECONDS",
            "0",
            "backend.refresh_seconds",
        ),
        (
            "ALGO_ALLOWED_SOURCE_SCHEMES",
            "rtsp,gopher",
            "security.allowed_source_schemes",
        ),
        (
            "ALGO_ALLOWED_SOURCE_SCHEMES",
            "",
            "security.allowed_source_schemes",
        ),
        (
            "ALGO_SAVE_RAW_FRAMES",
            "sometimes",
            "storage.save_raw_frames",
        ),
        ("ALGO_SAVE_DIR", "", "storage.save_dir"),
        (
            "ALGO_TRUSTED_PROXIES",
            "10.0.0.1,proxy.lan",
            "server.trusted_proxies",
        ),
        (
            "ALGO_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "server.trusted_proxies",
        ),
        ("ALGO_SAVE_RETENTION_DAYS", "-1", "storage.retention_days"),
        ("ALGO_SAVE_MAX_MB", "10GB", "storage.max_size_mb"),
        ("ALGO_LOG_LEVEL", "loud[", "log.level"),
        ("ALGO_LOG_FORMAT", "xml", "log.format"),
    ];
    for (var, value, key) in cases {
        let err = load_err(&env_with_file(&no_file(), &[(var, value)]));
        assert_eq!(err.key, *key, "{var}={value}: {err}");
        let line = err.to_string();
        assert!(
            line.starts_with(&format!("config error: {key}: ")),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        if !value.trim().is_empty() {
            assert!(line.contains(var), "origin missing: {line}");
        }
    }
}

#[test]
fn secret_values_are_not_echoed_in_errors() {
    let err = load_err(&env_with_file(
        &no_file(),
        &[("ALGO_REDIS_URL", "hunter2@cache:6379")],
    ));
    assert_eq!(err.key, "redis.url");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn risk_thresholds_must_be_ordered() {
    let file = yaml("llm:\n  risk_threshold:\n    low: 0.7\n    medium: 0.6\n");
    let err = load_err(&env_with_file(file.path(), &[]));
    assert_eq!(err.key, "llm.risk_threshold.medium");
    let file = yaml("llm:\n  risk_threshold:\n    high: 0.5\n");
    assert_eq!(
        load_err(&env_with_file(file.path(), &[])).key,
        "llm.risk_threshold.high"
    );
}

#[test]
fn yaml_errors_name_the_key_or_file() {
    let cases: &[(&str, &str)] = &[
        ("model:\n  confidence: 0.5\n", "model.confidence"),
        ("modle:\n  name: x.onnx\n", "modle"),
        ("model:\n  name:\n    nested: 1\n", "model.name"),
        ("llm:\n  api_key: sk-123\n", "llm.api_key"),
        ("security:\n  auth_token: abc\n", "security.auth_token"),
        ("model:\n  max_det: [1, 2]\n", "model.max_det"),
        (
            "model:\n  confidence_threshold: high\n",
            "model.confidence_threshold",
        ),
        ("classes:\n  include: [car, {a: 1}]\n", "classes.include"),
    ];
    for (text, key) in cases {
        let file = yaml(text);
        let err = load_err(&env_with_file(file.path(), &[]));
        assert_eq!(err.key, *key, "{text}: {err}");
        assert!(!err.to_string().contains("sk-123"));
    }
    for text in ["model: [1, 2", "- just\n- a list\n", "a: b: c"] {
        let file = yaml(text);
        let err = load_err(&env_with_file(file.path(), &[]));
        assert_eq!(err.key, file.path().display().to_string(), "{text}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn empty_yaml_and_null_values_keep_defaults() {
    let file = yaml("# nothing\n");
    let c = load(&env_with_file(file.path(), &[]), &Overrides::default()).unwrap();
    assert_eq!(c.server.port, 5000);
    let file = yaml("server:\n  port:\n");
    let c = load(&env_with_file(file.path(), &[]), &Overrides::default()).unwrap();
    assert_eq!(c.server.port, 5000);
}

#[test]
fn config_path_that_is_a_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(&env_with_file(dir.path(), &[]));
    assert_eq!(err.key, "ALGO_MODEL_CONFIG_PATH");
}

#[test]
fn flag_errors_name_the_flag() {
    let e = env_with_file(&no_file(), &[]);
    let mut o = Overrides::default();
    assert_eq!(o.set_pair("no-equals-sign").unwrap_err().key, "--set");
    o.set_pair("model.nope=1").unwrap();
    assert_eq!(load(&e, &o).unwrap_err().key, "--set model.nope");
    let mut o = Overrides::default();
    o.set_pair("llm.api_key=sk-1").unwrap();
    assert_eq!(load(&e, &o).unwrap_err().key, "llm.api_key");
    let mut o = Overrides::default();
    o.set("server.port", "x", "--port");
    let err = load(&e, &o).unwrap_err();
    assert_eq!(err.key, "server.port");
    assert!(err.to_string().contains("--port"), "{err}");
}

#[test]
fn unreadable_secret_file_names_its_variable() {
    let e = env_with_file(
        &no_file(),
        &[("ALGO_AUTH_TOKEN_FILE", "/nonexistent/token")],
    );
    assert_eq!(load_err(&e).key, "ALGO_AUTH_TOKEN_FILE");
}

#[test]
fn streaming_mode_needs_redis_and_known_roles_and_reads_its_topic_file() {
    let on = [("ALGO_ENABLE_KAFKA_STREAMING", "true")];
    let err = load_err(&env_with_file(&no_file(), &on));
    assert_eq!(err.key, "redis.url", "{err}");
    let mut with_redis = on.to_vec();
    with_redis.push(("ALGO_REDIS_URL", "redis://127.0.0.1:6379/"));
    let mut bad_roles = with_redis.clone();
    bad_roles.push(("ALGO_STREAMING_ROLES", "detector,planner"));
    let err = load_err(&env_with_file(&no_file(), &bad_roles));
    assert_eq!(err.key, "kafka.roles");
    assert!(err.message.contains("planner"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("kafka.yaml");
    std::fs::write(&topics, "group_prefix: fleet-a\nmax_attempts: 0\n").unwrap();
    let mut with_file = with_redis.clone();
    let path = topics.to_str().unwrap().to_string();
    with_file.push(("ALGO_KAFKA_CONFIG_FILE", &path));
    let err = load_err(&env_with_file(&no_file(), &with_file));
    assert_eq!(err.key, path);
    std::fs::write(&topics, "group_prefix: fleet-a\n").unwrap();
    let c = load(
        &env_with_file(&no_file(), &with_file),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.kafka.file.group_prefix, "fleet-a");
    assert_eq!(c.kafka.roles.len(), 4, "every role by default");
    assert!(!c.kafka.instance_id.is_empty());
    let mut o = Overrides::default();
    o.set("kafka.roles", "llm-worker", "--roles");
    let c = load(&env_with_file(&no_file(), &with_file), &o).unwrap();
    assert_eq!(c.kafka.roles, [crate::config::kafka::Role::LlmWorker]);
}

#[test]
fn more_declared_cameras_than_may_run_is_a_config_error() {
    let e = env_with_file(&no_file(), &[("ALGO_MAX_CONCURRENT_STREAMS", "2")]);
    let mut o = Overrides::default();
    for id in 1..=2 {
        o.add_camera(format!("{id}=rtsp://127.0.0.1:8554/{id}"));
    }
    assert_eq!(load(&e, &o).unwrap().cameras.len(), 2, "at the cap");
    o.add_camera("3=rtsp://127.0.0.1:8554/3");
    let err = load(&e, &o).unwrap_err();
    assert_eq!(err.key, "stream.max_concurrent_streams", "{err}");
    assert!(err.to_string().contains("3 enabled cameras"), "{err}");
    // A fleet shares its declared cameras out: the cap is on what one instance runs.
    let fleet = env_with_file(
        &no_file(),
        &[
            ("ALGO_MAX_CONCURRENT_STREAMS", "2"),
            ("ALGO_ENABLE_KAFKA_STREAMING", "true"),
            ("ALGO_REDIS_URL", "redis://127.0.0.1:6379/"),
            ("ALGO_STREAMING_ROLES", "detector"),
        ],
    );
    assert_eq!(load(&fleet, &o).unwrap().cameras.len(), 3);
}
