//! Reading the streaming-mode topic file (`config/kafka.yaml`, path from `kafka.config_file`);
//! a missing file means the defaults of [`KafkaFile`]. The types live in the streaming crate.
//! `${NAME}` in a librdkafka property value is replaced by the environment variable `NAME`
//! (a missing one is an error), so the file itself holds no password.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;
pub use streaming::settings::{KafkaFile, Properties, Role, TopicSpec, Topics, parse_roles};

/// Reads the topic file at `path` (missing = defaults), taking `${NAME}`s from `env`.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<KafkaFile, ConfigError> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Ok(KafkaFile::default());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(name.clone(), format!("cannot read: {e}")))?;
    parse(&text, env).map_err(|message| ConfigError::new(name, message))
}

/// Replaces each `${NAME}` in `value` (of property `key`) by `env`'s `NAME`.
fn expand(key: &str, value: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("property `{key}`: `${{` without `}}`"))?;
        let var = &after[..end];
        let got = env
            .get(var)
            .ok_or_else(|| format!("property `{key}`: environment variable {var} is not set"))?;
        out.push_str(got);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every value of `props`.
fn expand_all(props: &mut Properties, env: &HashMap<String, String>) -> Result<(), String> {
    for (k, v) in props.iter_mut() {
        *v = expand(k, v, env)?;
    }
    Ok(())
}

/// Parses and checks the topic file's text.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<KafkaFile, String> {
    if text.trim().is_empty() {
        return Ok(KafkaFile::default());
    }
    let mut file: KafkaFile = super::yaml::parse(text, "Kafka file")?;
    expand_all(&mut file.properties, env)?;
    expand_all(&mut file.producer, env)?;
    expand_all(&mut file.consumer, env)?;
    if !(1..=32).contains(&file.replication_factor) {
        return Err("replication_factor must be 1 to 32".into());
    }
    if let Some(n) = file.min_insync_replicas
        && !(1..=file.replication_factor).contains(&n)
    {
        return Err(format!(
            "min_insync_replicas must be 1 to replication_factor ({})",
            file.replication_factor
        ));
    }
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
        let env = HashMap::new();
        assert_eq!(parse("", &env).unwrap(), KafkaFile::default());
        let f = parse("topics:\n  assessment_tasks:\n    name: tasks-2\n    partitions: 12\nmax_attempts: 5\n", &env).unwrap();
        assert_eq!(f.topics.assessment_tasks.name, "tasks-2");
        assert_eq!(f.topics.assessment_tasks.partitions, 12);
        assert_eq!(f.topics.detection_results.retention_ms, 3_600_000);
        assert_eq!(
            (f.max_attempts, f.group_prefix.as_str()),
            (5, "traffic-algo")
        );
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/kafka.yaml");
        assert_eq!(load(&committed, &env).unwrap(), KafkaFile::default());
    }

    #[test]
    fn production_settings_and_secrets_from_the_environment() {
        let env = HashMap::from([("KAFKA_PASSWORD".to_string(), "s3cret".to_string())]);
        let f = parse(
            "replication_factor: 3\nmin_insync_replicas: 2\ncreate_topics: false\n\
             properties:\n  security.protocol: SASL_SSL\n  sasl.password: \"pre-${KAFKA_PASSWORD}\"\n\
             producer:\n  enable.idempotence: true\n  linger.ms: 20\n",
            &env,
        )
        .unwrap();
        assert_eq!((f.replication_factor, f.min_insync_replicas), (3, Some(2)));
        assert!(!f.create_topics);
        assert_eq!(f.properties["sasl.password"], "pre-s3cret");
        assert_eq!(f.producer["enable.idempotence"], "true");
        assert_eq!(f.producer["linger.ms"], "20");
        let conn = f.connection("b1:9092,b2:9092");
        assert!(!format!("{conn:?}").contains("s3cret"), "{conn:?}");
        for (text, want) in [
            (
                "properties: {sasl.password: \"${NOPE}\"}\n",
                "NOPE is not set",
            ),
            ("properties: {x: \"${OPEN\"}\n", "without"),
            ("replication_factor: 0\n", "replication_factor"),
            (
                "replication_factor: 3\nmin_insync_replicas: 4\n",
                "min_insync_replicas",
            ),
        ] {
            let err = parse(text, &env).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
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
            let err = parse(text, &HashMap::new()).unwrap_err();
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
            parse(&yaml(&f), &HashMap::new())
                .unwrap_err()
                .contains("not a Kafka topic name")
        );
        f = KafkaFile::default();
        f.topics.assessment_tasks.name = "r".into();
        assert!(
            parse(&yaml(&f), &HashMap::new())
                .unwrap_err()
                .contains("used twice")
        );
        f = KafkaFile::default();
        f.topics.detection_results.partitions = 0;
        assert!(
            parse(&yaml(&f), &HashMap::new())
                .unwrap_err()
                .contains("partitions")
        );
        f = KafkaFile::default();
        f.topics.dead_letter.retention_ms = 5;
        assert!(
            parse(&yaml(&f), &HashMap::new())
                .unwrap_err()
                .contains("retention_ms")
        );
    }
}
