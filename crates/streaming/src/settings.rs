//! What streaming mode is configured with: this process's roles, and the topic file (SPEC 6,
//! `config/kafka.yaml`): names, partitions and retention of SPEC's three topics, the
//! merged-results topic that carries results back to the instance serving the camera, and the
//! dead-letter topic, the consumer group prefix and how often a message may fail before it is
//! dead-lettered; for a production cluster the replication factor and `min.insync.replicas` of
//! the topics, whether they are created at all, and librdkafka properties (SASL, TLS, acks,
//! idempotence, ...) for every client, producers or consumers. Every field of the file is
//! optional; the service reads and checks it.

use std::collections::BTreeMap;
use std::time::Duration;

use llm::keys::RiskThresholds;
use llm::prompt::PromptConfig;
use serde::Deserialize;

/// What a process does in streaming mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Runs cameras and publishes `detection-results`.
    Detector,
    /// Turns detections into `assessment-tasks`.
    Tasks,
    /// Answers tasks through the LLM key pool.
    LlmWorker,
    /// Merges answers per detection and sends them to the camera's instance.
    Aggregator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Self::Detector,
        Self::Tasks,
        Self::LlmWorker,
        Self::Aggregator,
    ];

    /// The role's name in configuration and group ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detector => "detector",
            Self::Tasks => "tasks",
            Self::LlmWorker => "llm-worker",
            Self::Aggregator => "aggregator",
        }
    }
}

/// Parses a comma list of roles (no duplicates, at least one).
pub fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let role = Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| {
                format!("unknown role `{name}`: use detector, tasks, llm-worker, aggregator")
            })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err("name at least one role".into());
    }
    roles.sort();
    Ok(roles)
}

/// One topic as created at start-up when missing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions (messages are keyed by camera id, so a camera stays on one partition).
    #[serde(default = "partitions_default")]
    pub partitions: i32,
    /// `retention.ms` (of a topic that is not compacted).
    #[serde(default = "retention_default")]
    pub retention_ms: i64,
    /// `cleanup.policy: compact`: the latest record of each key is kept, whatever its age.
    #[serde(default)]
    pub compacted: bool,
}

fn partitions_default() -> i32 {
    6
}

fn retention_default() -> i64 {
    3_600_000
}

impl TopicSpec {
    fn named(name: &str, partitions: i32, retention_ms: i64) -> Self {
        Self {
            name: name.into(),
            partitions,
            retention_ms,
            compacted: false,
        }
    }
}

/// The topics; any left out keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Analysed frames with their groups (detector -> tasks, aggregator).
    pub detection_results: TopicSpec,
    /// One LLM task per group (tasks -> llm-worker).
    pub assessment_tasks: TopicSpec,
    /// LLM answers per task (llm-worker -> aggregator).
    pub risk_assessment_results: TopicSpec,
    /// Merged results on their way to the instance that serves the camera (aggregator ->
    /// every instance, each reading only its own).
    pub merged_results: TopicSpec,
    /// Messages that failed `max_attempts` times.
    pub dead_letter: TopicSpec,
    /// The fleet's cameras, keyed by camera id (compacted): each detector instance runs those
    /// of the partitions it is assigned, so partitions bound how finely cameras spread.
    pub camera_definitions: TopicSpec,
    /// Every message of a camera watched on another instance than the one running it (results
    /// with their frame, states), read by every instance from its end.
    pub live_results: TopicSpec,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            detection_results: TopicSpec::named("detection-results", 6, 3_600_000),
            assessment_tasks: TopicSpec::named("assessment-tasks", 6, 3_600_000),
            risk_assessment_results: TopicSpec::named("risk-assessment-results", 6, 3_600_000),
            merged_results: TopicSpec::named("merged-results", 6, 3_600_000),
            dead_letter: TopicSpec::named("traffic-dead-letter", 1, 7 * 86_400_000),
            camera_definitions: TopicSpec {
                compacted: true,
                ..TopicSpec::named("camera-definitions", 32, 3_600_000)
            },
            live_results: TopicSpec::named("live-results", 6, 60_000),
        }
    }
}

impl Topics {
    /// All of them, in creation order.
    pub fn all(&self) -> [&TopicSpec; 7] {
        [
            &self.detection_results,
            &self.assessment_tasks,
            &self.risk_assessment_results,
            &self.merged_results,
            &self.dead_letter,
            &self.camera_definitions,
            &self.live_results,
        ]
    }
}

/// A librdkafka property value as written in YAML: text, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// Anything else.
    Text(String),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// librdkafka properties by name, as text.
pub type Properties = BTreeMap<String, String>;

/// The topic file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaFile {
    /// Topics.
    pub topics: Topics,
    /// Consumer groups are `{group_prefix}-{role}`.
    pub group_prefix: String,
    /// Attempts at one message before it goes to the dead-letter topic.
    pub max_attempts: u32,
    /// Replicas of each topic created (3 on a production cluster).
    pub replication_factor: i32,
    /// `min.insync.replicas` of each topic created (absent: the broker's default). With
    /// `acks=all` a send succeeds only once this many replicas have it.
    pub min_insync_replicas: Option<i32>,
    /// Whether missing topics are created at start-up; `false`: they must exist (checked at
    /// start-up, with a clear error naming the missing ones).
    pub create_topics: bool,
    /// librdkafka properties of every client (`security.protocol`, `sasl.*`, `ssl.*`, ...);
    /// `${NAME}` in a value is read from the environment when the file is loaded.
    #[serde(deserialize_with = "properties")]
    pub properties: Properties,
    /// Properties of producers only (`acks`, `enable.idempotence`, `compression.type`, ...).
    #[serde(deserialize_with = "properties")]
    pub producer: Properties,
    /// Properties of consumers only (`session.timeout.ms`, ...).
    #[serde(deserialize_with = "properties")]
    pub consumer: Properties,
    /// A role's consumer left without partitions this many seconds leaves and joins its group
    /// again (0: never). For Tansu, which can leave a new member unassigned after its group
    /// emptied; on a real cluster members beyond the partition count are simply idle, and
    /// rejoining would rebalance the whole group.
    pub rejoin_idle_seconds: u64,
}

/// A property map whose values may be written as YAML numbers or booleans.
fn properties<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Properties, D::Error> {
    let map: BTreeMap<String, PropertyValue> = BTreeMap::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.to_string())).collect())
}

impl Default for KafkaFile {
    fn default() -> Self {
        Self {
            topics: Topics::default(),
            group_prefix: "traffic-algo".into(),
            max_attempts: 3,
            replication_factor: 1,
            min_insync_replicas: None,
            create_topics: true,
            properties: Properties::new(),
            producer: Properties::new(),
            consumer: Properties::new(),
            rejoin_idle_seconds: 0,
        }
    }
}

impl KafkaFile {
    /// How clients reach the cluster at `bootstrap` with this file's properties.
    pub fn connection(&self, bootstrap: &str) -> Connection {
        Connection {
            bootstrap: bootstrap.to_string(),
            common: self.properties.clone(),
            producer: self.producer.clone(),
            consumer: self.consumer.clone(),
        }
    }
}

/// How every client of this process reaches the cluster: the bootstrap servers and the
/// librdkafka properties of the topic file. Its `Debug` shows property names, never values
/// (they may hold passwords).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Broker addresses, comma list.
    pub bootstrap: String,
    /// Properties of every client.
    pub common: Properties,
    /// Properties of producers.
    pub producer: Properties,
    /// Properties of consumers.
    pub consumer: Properties,
}

impl Connection {
    /// The brokers at `bootstrap`, with no extra properties (a test broker, a benchmark).
    pub fn plain(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("bootstrap", &self.bootstrap)
            .field("common", &self.common.keys().collect::<Vec<_>>())
            .field("producer", &self.producer.keys().collect::<Vec<_>>())
            .field("consumer", &self.consumer.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Everything this process's streaming roles need.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The cluster.
    pub connection: Connection,
    /// A detection whose answers do not all arrive in this time is published partial.
    pub aggregation_timeout: Duration,
    /// The roles this process plays.
    pub roles: Vec<Role>,
    /// This instance's id (merged results come back to it).
    pub instance_id: String,
    /// The topic file.
    pub file: KafkaFile,
    /// The shared Redis (`redis.url`), required.
    pub redis_url: Option<String>,
    /// How LLM requests are built (llm-worker role).
    pub prompt: PromptConfig,
    /// Confidence -> level where the model's level is unusable (llm-worker role).
    pub thresholds: RiskThresholds,
}
