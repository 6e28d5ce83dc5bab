//! The LLM API-key pool file (SPEC 6): `config/api_keys.yaml`, path from `llm.api_keys_file`,
//! `keys: [{id, api_key | api_key_env, priority, qps_limit, rpm_limit, max_in_flight, enabled}]`
//! and an optional pool-wide `qps_limit`. Keys are best named by environment variable
//! (`api_key_env`) so the file holds no secret. A missing file means no pool: the single key of
//! `llm.api_key` is then a pool of one with the default limits.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

pub use llm::keys::{ApiKey, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QPS, KeyPoolConfig, KeySpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default = "one")]
    priority: u32,
    #[serde(default)]
    qps_limit: Option<f64>,
    #[serde(default)]
    rpm_limit: Option<u32>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    keys: Vec<Entry>,
    #[serde(default)]
    qps_limit: Option<f64>,
}

/// Reads the pool file at `path` (missing = empty pool), taking `api_key_env` values from `env`.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<KeyPoolConfig, ConfigError> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Ok(KeyPoolConfig::default());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(name.clone(), format!("cannot read: {e}")))?;
    parse(&text, env).map_err(|message| ConfigError::new(name, message))
}

/// Parses the pool file's text.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<KeyPoolConfig, String> {
    if text.trim().is_empty() {
        return Ok(KeyPoolConfig::default());
    }
    let file: File = super::yaml::parse(text, "API key file")?;
    let positive = |what: &str, v: Option<f64>| match v {
        Some(q) if !(q.is_finite() && q > 0.0) => Err(format!("{what} must be above 0")),
        _ => Ok(v),
    };
    let mut keys: Vec<KeySpec> = Vec::new();
    for e in file.keys {
        if e.id.trim().is_empty() {
            return Err("a key has an empty id".into());
        }
        if keys.iter().any(|k| k.id == e.id) {
            return Err(format!("key id `{}` appears twice", e.id));
        }
        let secret = match (&e.api_key, &e.api_key_env) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "key `{}`: give api_key or api_key_env, not both",
                    e.id
                ));
            }
            (Some(k), None) => k.trim().to_string(),
            (None, Some(var)) => env
                .get(var)
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
            (None, None) => return Err(format!("key `{}`: api_key or api_key_env needed", e.id)),
        };
        if !e.enabled {
            continue;
        }
        if secret.is_empty() {
            let var = e.api_key_env.unwrap_or_default();
            return Err(format!(
                "key `{}`: environment variable {var} is not set",
                e.id
            ));
        }
        let qps_limit = positive(&format!("key `{}`: qps_limit", e.id), e.qps_limit)?;
        if e.rpm_limit == Some(0) || e.max_in_flight == Some(0) {
            return Err(format!(
                "key `{}`: rpm_limit and max_in_flight must be above 0",
                e.id
            ));
        }
        keys.push(KeySpec {
            id: e.id,
            api_key: ApiKey::new(secret),
            priority: e.priority,
            qps_limit: qps_limit.unwrap_or(DEFAULT_QPS),
            rpm_limit: e.rpm_limit,
            max_in_flight: e.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        });
    }
    Ok(KeyPoolConfig {
        keys,
        qps_limit: positive("qps_limit", file.qps_limit)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([("KEY_B".to_string(), "sk-b".to_string())])
    }

    #[test]
    fn keys_come_from_the_file_or_the_environment() {
        let text = "qps_limit: 8\nkeys:\n  - id: a\n    api_key: sk-a\n    priority: 2\n    qps_limit: 3\n    rpm_limit: 100\n  - id: b\n    api_key_env: KEY_B\n  - id: off\n    api_key_env: UNSET\n    enabled: false\n";
        let pool = parse(text, &env()).unwrap();
        assert_eq!(pool.qps_limit, Some(8.0));
        assert_eq!(pool.keys.len(), 2, "the disabled key is left out");
        let (a, b) = (&pool.keys[0], &pool.keys[1]);
        assert_eq!(
            (a.api_key.expose(), a.priority, a.qps_limit),
            ("sk-a", 2, 3.0)
        );
        assert_eq!(a.rpm_limit, Some(100));
        assert_eq!(
            (b.api_key.expose(), b.priority, b.qps_limit),
            ("sk-b", 1, DEFAULT_QPS)
        );
        assert_eq!(b.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    }

    #[test]
    fn the_committed_example_loads_with_its_variables_set() {
        let env: HashMap<String, String> = [("DASHSCOPE_KEY_1", "a"), ("DASHSCOPE_KEY_2", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/api_keys.example.yaml");
        let pool = load(&path, &env).unwrap();
        let ids: Vec<&str> = pool.keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["key-001", "key-002"]);
        assert_eq!(
            (pool.qps_limit, pool.keys[0].rpm_limit),
            (Some(40.0), Some(300))
        );
        let missing = load(&path, &HashMap::new()).unwrap_err();
        assert!(
            missing.message.contains("DASHSCOPE_KEY_1 is not set"),
            "{missing}"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let cases = [
            ("keys:\n  - id: a\n", "api_key or api_key_env needed"),
            (
                "keys:\n  - id: a\n    api_key_env: NOPE\n",
                "NOPE is not set",
            ),
            (
                "keys:\n  - id: a\n    api_key: x\n    api_key_env: KEY_B\n",
                "not both",
            ),
            (
                "keys:\n  - id: a\n    api_key: x\n  - id: a\n    api_key: y\n",
                "twice",
            ),
            (
                "keys:\n  - id: a\n    api_key: x\n    qps_limit: 0\n",
                "above 0",
            ),
            (
                "keys:\n  - id: a\n    api_key: x\n    rpm_limit: 0\n",
                "above 0",
            ),
            (
                "keys:\n  - id: a\n    api_key: x\n    colour: red\n",
                "invalid API key file",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text, &env()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'));
        }
        assert_eq!(parse("", &env()).unwrap(), KeyPoolConfig::default());
    }
}
