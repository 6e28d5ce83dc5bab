//! The table of every setting: its canonical key (also its path in `model_config.yaml`), the
//! environment variables that set it, its default and whether it is a secret. One table drives
//! loading, `check-config` and the documentation test, so they cannot drift apart.

/// One configurable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Canonical dotted key, also the YAML path (unless `in_yaml` is false).
    pub key: &'static str,
    /// Environment variables that set it, the first present wins.
    pub env: &'static [&'static str],
    /// An environment variable naming a file whose content is the value (secrets).
    pub file_env: Option<&'static str>,
    /// Whether `model_config.yaml` may set it (secrets may not).
    pub in_yaml: bool,
    /// The default, as text; empty means unset.
    pub default: &'static str,
    /// Whether the value is redacted in output.
    pub secret: bool,
    /// What it means.
    pub doc: &'static str,
}

const fn plain(
    key: &'static str,
    env: &'static [&'static str],
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        file_env: None,
        in_yaml: true,
        default,
        secret: false,
        doc,
    }
}

const fn secret(
    key: &'static str,
    env: &'static [&'static str],
    file_env: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        file_env: Some(file_env),
        in_yaml: false,
        default: "",
        secret: true,
        doc,
    }
}

/// The environment variable naming the YAML file.
pub const ENV_CONFIG_PATH: &str = "ALGO_MODEL_CONFIG_PATH";
/// The default YAML file.
pub const DEFAULT_CONFIG_PATH: &str = "model_config.yaml";
/// ONNX Runtime's own variable for an explicit library path.
pub const ENV_ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Every setting, in the order `check-config` prints them.
pub const SETTINGS: &[Setting] = &[
    plain(
        "server.host",
        &["ALGO_SERVER_HOST"],
        "0.0.0.0",
        "listen address",
    ),
    plain("server.port", &["ALGO_SERVER_PORT"], "5000", "listen port"),
    plain(
        "server.cors_origins",
        &["ALGO_CORS_ORIGINS"],
        "*",
        "allowed CORS origins, comma list; `*` = any",
    ),
    plain(
        "server.ws_heartbeat_seconds",
        &["ALGO_WS_HEARTBEAT_SECONDS"],
        "30",
        "server ping interval; a client silent for 3 intervals is dropped",
    ),
    plain(
        "server.max_ws_connections",
        &["ALGO_MAX_WS_CONNECTIONS"],
        "256",
        "WebSocket connections at once; more are refused with 503",
    ),
    plain(
        "server.max_ws_connections_per_ip",
        &["ALGO_MAX_WS_CONNECTIONS_PER_IP"],
        "32",
        "WebSocket connections at once from one address; more are refused with 429 (behind a \
         reverse proxy, see `server.trusted_proxies`)",
    ),
    plain(
        "server.ws_messages_per_second",
        &["ALGO_WS_MESSAGES_PER_SECOND"],
        "20",
        "messages a WebSocket client may send per second (bursts of twice that); beyond, `error` \
         `rate_limited` and the messages are dropped",
    ),
    plain(
        "server.trusted_proxies",
        &["ALGO_TRUSTED_PROXIES"],
        "",
        "reverse proxies (addresses or CIDR ranges, comma list) whose `X-Forwarded-For` names \
         the client for the per-address limit; empty = none, and every client behind a proxy \
         counts as the proxy",
    ),
    plain(
        "stream.frame_interval",
        &["ALGO_FRAME_INTERVAL"],
        "1.8",
        "seconds between analysed frames per camera",
    ),
    plain(
        "stream.alert_pause_seconds",
        &["ALGO_ALERT_PAUSE_SECONDS"],
        "3.0",
        "after a `high` risk, the next analysed frame of that camera waits this long",
    ),
    plain(
        "stream.max_concurrent_streams",
        &["ALGO_MAX_CONCURRENT_STREAMS"],
        "16",
        "cameras at once, however started; beyond, `start_stream` gets `error` `too_many_streams`, a backend camera waits (logged) and more enabled cameras in the cameras file are a config error",
    ),
    plain(
        "cameras.file",
        &["ALGO_CAMERAS_FILE"],
        "cameras.yaml",
        "cameras started with the service: `cameras: [{id, url, enabled}]`; missing file = none",
    ),
    plain(
        "scenes.dir",
        &["ALGO_SCENES_DIR"],
        "scenes",
        "folder of per-camera scene files `<cameraId>.yaml` (calibration, lanes, zones, count \
         lines; [scene geometry](scene-and-rules.md#scenes)); `PUT /api/cameras/{id}/scene` \
         saves there; missing folder = none",
    ),
    plain(
        "scenes.max_reprojection_error_px",
        &["ALGO_SCENES_MAX_REPROJECTION_ERROR_PX"],
        "5",
        "a calibration whose RMS reprojection error is above this many pixels is refused \
         (most likely a mistyped point)",
    ),
    plain(
        "classes.include",
        &["ALGO_ALLOWED_CLASSES"],
        "person,bicycle,car,motorcycle,bus,truck,traffic light,stop sign",
        "classes kept, comma list (or a YAML list); `traffic_light` and `traffic light` both \
         accepted",
    ),
    plain(
        "model.name",
        &["ALGO_YOLO_MODEL_NAME"],
        "yolov8n.onnx",
        "ONNX model: a file name in `model.weights_dir`, or a path",
    ),
    plain(
        "model.precision",
        &["ALGO_YOLO_PRECISION"],
        "auto",
        "`fp32` runs `model.name`; `int8` its static int8 twin `<stem>.int8.onnx` beside it \
         (made by scripts/setup.sh); `auto`: int8 when the twin exists and the CPU has VNNI",
    ),
    plain(
        "model.weights_dir",
        &["ALGO_WEIGHTS_DIR"],
        "weights",
        "folder of model files",
    ),
    plain(
        "model.confidence_threshold",
        &["ALGO_YOLO_CONFIDENCE"],
        "0.35",
        "minimum detection confidence",
    ),
    plain(
        "model.iou_threshold",
        &["ALGO_YOLO_IOU"],
        "0.50",
        "NMS IoU threshold",
    ),
    plain(
        "model.image_size",
        &["ALGO_YOLO_IMAGE_SIZE"],
        "640",
        "input size for models with dynamic input dimensions",
    ),
    plain(
        "model.max_det",
        &["ALGO_YOLO_MAX_DET"],
        "200",
        "most detections per frame",
    ),
    plain(
        "model.device",
        &["ALGO_YOLO_DEVICE"],
        "cpu",
        "inference device; anything but `cpu` is a clear error (CPU-only build)",
    ),
    plain(
        "model.threads",
        &["ALGO_INFERENCE_THREADS"],
        "0",
        "ONNX Runtime intra-op threads per session; 0 = the cores shared out among the sessions (one-frame commands: ONNX Runtime's choice)",
    ),
    plain(
        "model.sessions",
        &["ALGO_INFERENCE_SESSIONS"],
        "0",
        "inference sessions side by side in the service, each on its own thread taking frames from one queue; 0 = one per core (at most 8)",
    ),
    plain(
        "tracking.enabled",
        &["ALGO_TRACKING_ENABLED"],
        "true",
        "track objects across frames; off: no track ids, histories or rules (groups still)",
    ),
    plain(
        "tracking.tracker",
        &["ALGO_TRACKER_TYPE"],
        "bytetrack",
        "tracker algorithm (`bytetrack`)",
    ),
    plain(
        "tracking.track_thresh",
        &["ALGO_TRACK_THRESH"],
        "0.25",
        "detections at or above this score are matched to tracks first, and start one from this + 0.1; lower ones (down to 0.1, even below `model.confidence_threshold`) only continue confirmed tracks",
    ),
    plain(
        "tracking.match_thresh",
        &["ALGO_TRACK_MATCH_THRESH"],
        "0.8",
        "largest cost (1 - IoU) of a track-detection match",
    ),
    plain(
        "tracking.track_buffer",
        &["ALGO_TRACK_BUFFER"],
        "90",
        "frames (at `tracking.frame_rate`) a lost track is remembered: `track_buffer / \
         frame_rate` s, 90 at 30 = 3 s (at least one analysed frame)",
    ),
    plain(
        "tracking.frame_rate",
        &["ALGO_TRACK_FRAME_RATE"],
        "30",
        "frame rate that ByteTrack's motion noise and `track_buffer` are expressed in",
    ),
    plain(
        "tracking.max_jump",
        &["ALGO_TRACK_MAX_JUMP"],
        "3.0",
        "farthest move (box diagonals per analysed frame) the distance stage links; 0 = off",
    ),
    plain(
        "rules.enabled",
        &["ALGO_RULES_ENABLED"],
        "true",
        "judge danger with the track rules",
    ),
    plain(
        "rules.stationary_speed",
        &[],
        "0.3",
        "uncalibrated scenes: below this speed (box heights per second) a vehicle stands still",
    ),
    plain(
        "rules.moving_speed",
        &[],
        "1.0",
        "uncalibrated scenes: from this speed (box heights per second) a vehicle is moving",
    ),
    plain(
        "rules.tailgating.headway_seconds",
        &[],
        "1.0",
        "time headway to the vehicle ahead in the same lane under which a follower tailgates \
         (half: high); calibrated scenes only",
    ),
    plain(
        "rules.tailgating.min_speed_kmh",
        &[],
        "30",
        "tailgating is judged only from this speed (a queue is never tailgating)",
    ),
    plain(
        "rules.pedestrian.horizon_seconds",
        &[],
        "3.0",
        "time to collision between a vehicle and a pedestrian in its path that is medium \
         (1.5 s or less: high, calibrated only)",
    ),
    plain(
        "rules.wrong_way.min_samples",
        &[],
        "30",
        "lanes without a direction: moving vehicles a grid cell of the learned flow must have \
         seen before it judges direction",
    ),
    plain(
        "rules.sudden_stop.deceleration",
        &[],
        "4.0",
        "hard braking: mean deceleration over a second (m/s^2) that is one (7: high); \
         calibrated scenes at 0.5 s or faster only",
    ),
    plain(
        "rules.sudden_stop.min_speed_kmh",
        &[],
        "25",
        "hard braking counts only from this speed",
    ),
    plain(
        "rules.illegal_stop.dwell_seconds",
        &[],
        "60",
        "seconds a vehicle that arrived moving may stand in a `no_stopping` zone (or an `roi` \
         zone outside the lanes) when not queued (low; 3x as long: medium)",
    ),
    plain(
        "rules.congestion.min_vehicles",
        &[],
        "6",
        "fewest vehicles with a known speed (per lane, with lanes) before congestion is judged",
    ),
    plain(
        "post_processing.distance_threshold",
        &["ALGO_GROUP_DISTANCE_THRESHOLD"],
        "150",
        "grouping distance in pixels of a 1280-wide frame, scaled to the real width",
    ),
    plain(
        "post_processing.min_group_size",
        &["ALGO_GROUP_MIN_SIZE"],
        "2",
        "fewest objects in a traffic group",
    ),
    plain(
        "post_processing.crop_margin",
        &["ALGO_GROUP_CROP_MARGIN"],
        "12",
        "pixels added around a group's crop",
    ),
    plain(
        "llm.enabled",
        &["ALGO_LLM_ENABLED"],
        "true",
        "use the multimodal LLM; used only when an API key is set (`llm.api_key` or the pool \
         file)",
    ),
    plain(
        "llm.base_url",
        &["ALGO_LLM_BASE_URL"],
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        "base URL of any OpenAI-compatible server (default: DashScope compatible-mode v1)",
    ),
    plain(
        "llm.model",
        &["ALGO_LLM_MODEL"],
        "qwen-vl-plus",
        "model name",
    ),
    plain(
        "llm.timeout",
        &["ALGO_LLM_TIMEOUT"],
        "30",
        "seconds per request; also the longest a request waits for a key (then `no_key`)",
    ),
    plain(
        "llm.max_retry",
        &["ALGO_LLM_MAX_RETRY"],
        "2",
        "retries after a failed request",
    ),
    plain(
        "llm.cooldown_seconds",
        &["ALGO_LLM_COOLDOWN_SECONDS"],
        "3.0",
        "per camera, started by every call, failed ones too",
    ),
    plain(
        "llm.max_image_tokens",
        &["ALGO_LLM_MAX_IMAGE_TOKENS"],
        "1280",
        "vision tokens (28 x 28 px each, as qwen-vl-plus counts them) one group image may use; \
         larger crops are scaled down",
    ),
    plain(
        "llm.api_keys_file",
        &["ALGO_API_KEYS_FILE"],
        "config/api_keys.yaml",
        "the API-key pool: `keys: [{id, api_key | api_key_env, priority, qps_limit, rpm_limit, \
         max_in_flight, enabled}]` (example: `config/api_keys.example.yaml`); missing file = \
         the single key",
    ),
    plain(
        "llm.risk_threshold.low",
        &[],
        "0.45",
        "confidence from which an LLM finding is low risk, when the model's level is missing or \
         invalid",
    ),
    plain(
        "llm.risk_threshold.medium",
        &[],
        "0.65",
        "confidence from which an LLM finding is medium (not below `llm.risk_threshold.low`)",
    ),
    plain(
        "llm.risk_threshold.high",
        &[],
        "0.80",
        "confidence from which an LLM finding is high (not below `llm.risk_threshold.medium`)",
    ),
    secret(
        "llm.api_key",
        &["ALGO_LLM_API_KEY", "DASHSCOPE_API_KEY"],
        "ALGO_LLM_API_KEY_FILE",
        "one LLM API key, used when there is no pool file (`llm.api_keys_file`)",
    ),
    plain(
        "kafka.enabled",
        &["ALGO_ENABLE_KAFKA_STREAMING"],
        "false",
        "streaming mode through Kafka",
    ),
    plain(
        "kafka.bootstrap_servers",
        &["ALGO_KAFKA_BOOTSTRAP_SERVERS"],
        "localhost:9092",
        "Kafka brokers, comma list",
    ),
    plain(
        "kafka.aggregation_timeout_seconds",
        &["ALGO_AGGREGATION_TIMEOUT_SECONDS"],
        "10",
        "a request whose results do not all arrive in time is published partial",
    ),
    plain(
        "kafka.config_file",
        &["ALGO_KAFKA_CONFIG_FILE"],
        "config/kafka.yaml",
        "topics (names, partitions, retention), consumer group prefix, attempts before \
         dead-lettering; missing file = defaults",
    ),
    plain(
        "kafka.roles",
        &["ALGO_STREAMING_ROLES"],
        "detector,tasks,llm-worker,aggregator",
        "what this process does in streaming mode, comma list; also `--roles`",
    ),
    plain(
        "kafka.instance_id",
        &["ALGO_INSTANCE_ID"],
        "",
        "this process's name in streaming mode (merged results of its cameras come back to it; \
         its consumer groups are named after it); empty = `host-port` (`server.port`), the same \
         after a restart (`host-pidN` on port 0)",
    ),
    secret(
        "redis.url",
        &["ALGO_REDIS_URL"],
        "ALGO_REDIS_URL_FILE",
        "Redis, the shared state of streaming mode: `redis://`, `rediss://` or `unix://`; \
         required in streaming mode",
    ),
    plain(
        "backend.base_url",
        &["ALGO_BACKEND_BASE_URL"],
        "http://localhost:9090/api",
        "the Spring Boot backend (camera list, statistics reports); the link is on only when this \
         is set",
    ),
    plain(
        "backend.cameras_path",
        &["ALGO_BACKEND_CAMERAS_PATH"],
        "/cameras",
        "GET path of the camera list, under `backend.base_url`",
    ),
    plain(
        "backend.stats_path",
        &["ALGO_BACKEND_STATS_PATH"],
        "/traffic/statistics",
        "POST path of per-camera statistics",
    ),
    plain(
        "backend.refresh_seconds",
        &["ALGO_BACKEND_REFRESH_SECONDS"],
        "60",
        "how often the camera list is fetched",
    ),
    plain(
        "backend.stats_interval_seconds",
        &["ALGO_BACKEND_STATS_INTERVAL_SECONDS"],
        "60",
        "how often statistics are posted",
    ),
    plain(
        "backend.camera_id_field",
        &["ALGO_BACKEND_CAMERA_ID_FIELD"],
        "id",
        "field of a camera-list entry holding its id",
    ),
    plain(
        "backend.camera_url_field",
        &["ALGO_BACKEND_CAMERA_URL_FIELD"],
        "rtspUrl",
        "field of a camera-list entry holding its stream URL",
    ),
    plain(
        "backend.camera_enabled_field",
        &["ALGO_BACKEND_CAMERA_ENABLED_FIELD"],
        "enabled",
        "field of a camera-list entry saying whether it is enabled (absent = enabled)",
    ),
    plain(
        "backend.jwt_header",
        &["ALGO_JWT_HEADER"],
        "Authorization",
        "header carrying `Bearer <backend.jwt_token>`",
    ),
    secret(
        "backend.jwt_token",
        &["ALGO_JWT_TOKEN"],
        "ALGO_JWT_TOKEN_FILE",
        "token sent to the backend in `backend.jwt_header`",
    ),
    secret(
        "security.auth_token",
        &["ALGO_AUTH_TOKEN"],
        "ALGO_AUTH_TOKEN_FILE",
        "when set, `/ws` and `/api/*` (health check excepted) need this bearer token \
         (`Authorization: Bearer` or `?token=`)",
    ),
    plain(
        "security.allowed_source_schemes",
        &["ALGO_ALLOWED_SOURCE_SCHEMES"],
        "rtsp,rtsps,http,https",
        "camera URL schemes that may be opened (`file` only when listed)",
    ),
    plain(
        "security.allowed_source_hosts",
        &["ALGO_ALLOWED_SOURCE_HOSTS"],
        "",
        "camera hosts that may be opened, comma list; empty = any",
    ),
    plain(
        "storage.save_raw_frames",
        &["ALGO_SAVE_RAW_FRAMES"],
        "false",
        "keep every analysed frame on disk for review, as \
         `DIR/CAMERA/YYYY-MM-DD/HHMMSS.mmm.jpg` (UTC, about 100 KB each: some 5 GB a day per \
         camera at 1.8 s); a failing write is counted (`pipeline_errors_total{stage=\"save\"}`), \
         shown as the camera's `lastError`, logged once, and never stops the camera",
    ),
    plain(
        "storage.save_dir",
        &["ALGO_SAVE_DIR"],
        "frames/",
        "where saved frames go",
    ),
    plain(
        "storage.retention_days",
        &["ALGO_SAVE_RETENTION_DAYS"],
        "7",
        "saved frames older than this many days are deleted, at start-up and every minute; 0 \
         keeps them. Only files named the way the store names them are touched; deletions \
         are counted in `saved_frames_deleted_total`",
    ),
    plain(
        "storage.max_size_mb",
        &["ALGO_SAVE_MAX_MB"],
        "10240",
        "above this many MiB of saved frames the oldest are deleted (after the age limit, at \
         start-up and every minute); 0 = no cap; the total is in `saved_frames_bytes`",
    ),
    plain(
        "measurement.enabled",
        &["ALGO_MEASUREMENT_ENABLED"],
        "true",
        "keep what the scenes measure (line counts, movements, lane speeds) and the danger \
         events in the database ([traffic measurement](measurement.md))",
    ),
    plain(
        "measurement.bin_seconds",
        &["ALGO_MEASUREMENT_BIN_SECONDS"],
        "900",
        "length of a counting bin, seconds, aligned to the clock; a divisor of a day (60, \
         300, 900, 3600, ...)",
    ),
    plain(
        "measurement.retention_days",
        &["ALGO_MEASUREMENT_RETENTION_DAYS"],
        "365",
        "bins and events older than this many days are deleted (hourly), with their snapshots",
    ),
    plain(
        "measurement.database_path",
        &["ALGO_DATABASE_PATH"],
        "data/traffic.db",
        "the embedded SQLite database, used unless `measurement.database_url` is set",
    ),
    secret(
        "measurement.database_url",
        &["ALGO_DATABASE_URL"],
        "ALGO_DATABASE_URL_FILE",
        "a PostgreSQL database (`postgresql://USER:PASSWORD@HOST:PORT/DB`) shared by every \
         instance instead of the embedded SQLite one",
    ),
    plain(
        "measurement.snapshot_dir",
        &["ALGO_SNAPSHOT_DIR"],
        "data/snapshots",
        "where each danger event's frame is saved (`DIR/CAMERA/YYYY-MM-DD/HHMMSS.mmm-TYPE.jpg`)",
    ),
    plain(
        "log.level",
        &["ALGO_LOG_LEVEL"],
        "info",
        "trace, debug, info, warn, error or a `tracing` filter (`debug,ort=warn`)",
    ),
    plain(
        "log.format",
        &["ALGO_LOG_FORMAT"],
        "text",
        "`text` or `json` (one object per line, for log shippers)",
    ),
];

/// The setting with canonical key `key`.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_env_names_are_unique() {
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len());
        let mut envs: Vec<_> = SETTINGS.iter().flat_map(|s| s.env.iter()).collect();
        let n = envs.len();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!(envs.len(), n);
    }

    #[test]
    fn secrets_have_no_default_and_stay_out_of_yaml() {
        for s in SETTINGS.iter().filter(|s| s.secret) {
            assert!(s.default.is_empty() && !s.in_yaml, "{}", s.key);
        }
    }
}
