//! The streaming-mode topic file (SPEC 6): `config/kafka.yaml`, path from `kafka.config_file`.
//! Names, partitions and retention of SPEC's three topics, the merged-results topic that carries
//! results back to the instance serving the camera, and the dead-letter topic, the consumer
//! group prefix and how often a message may fail before it is dead-lettered. A missing file
//! means the defaults below; every field is optional.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

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
    /// `retention.ms`.
    #[serde(default = "retention_default")]
    pub retention_ms: i64,
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
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            detection_results: TopicSpec::named("detection-results", 6, 3_600_000),
            assessment_tasks: TopicSpec::named("assessment-tasks", 6, 3_600_000),
            risk_assessment_results: TopicSpec::named("risk-assessment-results", 6, 3_600_000),
            merged_results: TopicSpec::named("merged-results", 6, 3_600_000),
            dead_letter: TopicSpec::named("traffic-dead-letter", 1, 7 * 86_400_000),
        }
    }
}

impl Topics {
    /// All of them, in creation order.
    pub fn all(&self) -> [&TopicSpec; 5] {
        [
            &self.detection_results,
            &self.assessment_tasks,
            &self.risk_assessment_results,
            &self.merged_results,
            &self.dead_letter,
        ]
    }
}

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
}

impl Default for KafkaFile {
    fn default() -> Self {
        Self {
            topics: Topics::default(),
            group_prefix: "traffic-algo".into(),
            max_attempts: 3,
        }
    }
}

/// Reads the topic file at `path` (missing = defaults).
pub fn load(path: &Path) -> Result<KafkaFile, ConfigError> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Ok(KafkaFile::default());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(name.clone(), format!("cannot read: {e}")))?;
    parse(&text).map_err(|message| ConfigError::new(name, message))
}

/// Parses and checks the topic file's text.
pub fn parse(text: &str) -> Result<KafkaFile, String> {
    if text.trim().is_empty() {
        return Ok(KafkaFile::default());
    }
    let file: KafkaFile = serde_saphyr::from_str(text).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        format!("invalid Kafka file: {}", first.trim())
    })?;
    let mut names: Vec<&str> = Vec::new();
    for t in file.topics.all() {
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if t.name.is_empty() || t.name.len() > 249 || !t.name.chars().all(legal) {
            return Err(format!(
                "topic name `{}` is not a Kafka topic name (letters, digits, . _ -)",
                t.name
            ));
        }
        if names.contains(&t.name.as_str()) {
            return Err(format!("topic `{}` is used twice", t.name));
        }
        names.push(&t.name);
        if !(1..=1000).contains(&t.partitions) {
            return Err(format!("topic `{}`: partitions must be 1 to 1000", t.name));
        }
        if t.retention_ms < 1000 && t.retention_ms != -1 {
            return Err(format!(
                "topic `{}`: retention_ms must be at least 1000 (or -1 = forever)",
                t.name
            ));
        }
    }
    if file.group_prefix.trim().is_empty() {
        return Err("group_prefix must not be empty".into());
    }
    if !(1..=100).contains(&file.max_attempts) {
        return Err("max_attempts must be 1 to 100".into());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_files() {
        assert_eq!(parse("").unwrap(), KafkaFile::default());
        let f = parse("topics:\n  assessment_tasks:\n    name: tasks-2\n    partitions: 12\nmax_attempts: 5\n").unwrap();
        assert_eq!(f.topics.assessment_tasks.name, "tasks-2");
        assert_eq!(f.topics.assessment_tasks.partitions, 12);
        assert_eq!(f.topics.detection_results.retention_ms, 3_600_000);
        assert_eq!(
            (f.max_attempts, f.group_prefix.as_str()),
            (5, "traffic-algo")
        );
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/kafka.yaml");
        assert_eq!(load(&committed).unwrap(), KafkaFile::default());
    }

    #[test]
    fn roles_parse_from_a_comma_list() {
        assert_eq!(
            parse_roles(" llm-worker, detector,detector ").unwrap(),
            [Role::Detector, Role::LlmWorker]
        );
        assert_eq!(
            parse_roles("detector,tasks,llm-worker,aggregator").unwrap(),
            Role::ALL
        );
        assert!(parse_roles("").unwrap_err().contains("at least one"));
        assert!(
            parse_roles("worker")
                .unwrap_err()
                .contains("unknown role `worker`")
        );
    }

    #[test]
    fn bad_files_are_named() {
        for (text, want) in [
            ("max_attempts: 0\n", "max_attempts"),
            ("group_prefix: ' '\n", "group_prefix"),
            ("colour: red\n", "invalid Kafka file"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let mut f = KafkaFile::default();
        let yaml = |f: &KafkaFile| {
            let t = &f.topics;
            format!(
                "topics:\n  detection_results: {{name: '{}', partitions: {}}}\n  assessment_tasks: {{name: '{}'}}\n  risk_assessment_results: {{name: r}}\n  dead_letter: {{name: dlq, retention_ms: {}}}\n",
                t.detection_results.name,
                t.detection_results.partitions,
                t.assessment_tasks.name,
                t.dead_letter.retention_ms
            )
        };
        f.topics.detection_results.name = "bad topic".into();
        assert!(
            parse(&yaml(&f))
                .unwrap_err()
                .contains("not a Kafka topic name")
        );
        f = KafkaFile::default();
        f.topics.assessment_tasks.name = "r".into();
        assert!(parse(&yaml(&f)).unwrap_err().contains("used twice"));
        f = KafkaFile::default();
        f.topics.detection_results.partitions = 0;
        assert!(parse(&yaml(&f)).unwrap_err().contains("partitions"));
        f = KafkaFile::default();
        f.topics.dead_letter.retention_ms = 5;
        assert!(parse(&yaml(&f)).unwrap_err().contains("retention_ms"));
    }
}
