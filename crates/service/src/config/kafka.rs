//! Reading the streaming-mode topic file (`config/kafka.yaml`, path from `kafka.config_file`);
//! a missing file means the defaults of [`KafkaFile`]. The types live in the streaming crate.

use std::path::Path;

use super::ConfigError;
pub use streaming::settings::{KafkaFile, Role, TopicSpec, Topics, parse_roles};

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
    let file: KafkaFile = super::yaml::parse(text, "Kafka file")?;
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
