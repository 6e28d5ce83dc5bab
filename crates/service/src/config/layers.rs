//! Collecting raw setting values from the four layers, lowest first: defaults,
//! `model_config.yaml`, the environment (read through a map, so tests never touch the process
//! environment) and command-line overrides. The result is text per key with where it came from;
//! typing and validation happen afterwards in [`super::parse`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ConfigError;
use super::settings::{DEFAULT_CONFIG_PATH, ENV_CONFIG_PATH, SETTINGS, Setting, find};

/// Where a value came from, shown in errors and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The YAML file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A file named by an environment variable.
    EnvFile(&'static str),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(name) => f.write_str(name),
            Origin::EnvFile(name) => write!(f, "file named by {name}"),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

/// A setting's winning text and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    /// The value as text (lists comma-joined).
    pub text: String,
    /// Which layer set it.
    pub origin: Origin,
}

/// Command-line overrides: canonical key -> (value, the flag as the user wrote it).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    values: BTreeMap<String, (String, String)>,
    config_path: Option<PathBuf>,
    cameras: Vec<String>,
}

impl Overrides {
    /// Sets `key` from a flag spelled `flag`.
    pub fn set(&mut self, key: &str, value: impl Into<String>, flag: impl Into<String>) {
        self.values
            .insert(key.to_string(), (value.into(), flag.into()));
    }

    /// Parses a `--set KEY=VALUE` argument.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::new("--set", format!("`{pair}` is not KEY=VALUE")))?;
        self.set(key.trim(), value, format!("--set {}", key.trim()));
        Ok(())
    }

    /// Declares a camera (`--camera ID=URL`).
    pub fn add_camera(&mut self, decl: impl Into<String>) {
        self.cameras.push(decl.into());
    }

    /// The `--camera` declarations.
    pub fn cameras(&self) -> &[String] {
        &self.cameras
    }

    /// Uses `path` as the YAML file (`--config`).
    pub fn set_config_path(&mut self, path: PathBuf) {
        self.config_path = Some(path);
    }
}

/// Every setting's raw value, plus the YAML file that was read.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Canonical key -> raw value; keys without any value (unset secrets) are absent.
    pub values: BTreeMap<&'static str, RawValue>,
    /// The YAML file consulted and whether it existed.
    pub config_file: (PathBuf, bool),
}

impl Layers {
    /// Merges defaults, the YAML file, `env` and `overrides`.
    pub fn collect(
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, RawValue> = SETTINGS
            .iter()
            .filter(|s| !s.default.is_empty() || !s.secret)
            .map(|s| {
                (
                    s.key,
                    RawValue {
                        text: s.default.to_string(),
                        origin: Origin::Default,
                    },
                )
            })
            .collect();

        let (path, path_origin) = match (&overrides.config_path, env.get(ENV_CONFIG_PATH)) {
            (Some(p), _) => (p.clone(), "--config"),
            (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), ENV_CONFIG_PATH),
            _ => (PathBuf::from(DEFAULT_CONFIG_PATH), ENV_CONFIG_PATH),
        };
        let exists = path.is_file();
        if exists {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(path_origin, format!("cannot read {}: {e}", path.display()))
            })?;
            for (setting, text) in yaml_values(&text, &path)? {
                values.insert(
                    setting.key,
                    RawValue {
                        text,
                        origin: Origin::File(path.clone()),
                    },
                );
            }
        } else if path.exists() {
            return Err(ConfigError::new(
                path_origin,
                format!("{} is not a file", path.display()),
            ));
        }

        for setting in SETTINGS {
            if let Some(raw) = env_value(setting, env)? {
                values.insert(setting.key, raw);
            }
        }

        for (key, (text, flag)) in &overrides.values {
            let setting = find(key).ok_or_else(|| {
                ConfigError::new(flag.clone(), format!("unknown setting `{key}`"))
            })?;
            if setting.secret {
                return Err(ConfigError::new(
                    setting.key,
                    format!(
                        "secrets cannot be given on the command line; use {}",
                        setting.env.join(" or ")
                    ),
                ));
            }
            values.insert(
                setting.key,
                RawValue {
                    text: text.clone(),
                    origin: Origin::Flag(flag.clone()),
                },
            );
        }
        Ok(Self {
            values,
            config_file: (path, exists),
        })
    }
}

/// A setting's value from the environment: the first listed variable present, else the file
/// named by its `_FILE` variable.
fn env_value(
    setting: &Setting,
    env: &HashMap<String, String>,
) -> Result<Option<RawValue>, ConfigError> {
    if let Some((name, text)) = setting
        .env
        .iter()
        .find_map(|n| env.get(*n).map(|v| (*n, v)))
    {
        return Ok(Some(RawValue {
            text: text.clone(),
            origin: Origin::Env(name),
        }));
    }
    let Some(file_env) = setting.file_env else {
        return Ok(None);
    };
    let Some(path) = env.get(file_env).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file_env, format!("cannot read {path}: {e}")))?;
    Ok(Some(RawValue {
        text: text.trim().to_string(),
        origin: Origin::EnvFile(file_env),
    }))
}

/// Flattens a YAML document into `(setting, text)` pairs, rejecting unknown keys, secrets and
/// values of the wrong shape.
fn yaml_values(text: &str, path: &Path) -> Result<Vec<(&'static Setting, String)>, ConfigError> {
    let file = path.display().to_string();
    let doc: Value =
        super::yaml::parse(text, "YAML").map_err(|m| ConfigError::new(file.clone(), m))?;
    let mut out = Vec::new();
    match doc {
        Value::Null => {}
        Value::Object(map) => flatten(&map, "", &file, &mut out)?,
        _ => {
            return Err(ConfigError::new(
                file,
                "the top level must be a mapping of sections",
            ));
        }
    }
    Ok(out)
}

fn flatten(
    map: &serde_json::Map<String, Value>,
    prefix: &str,
    file: &str,
    out: &mut Vec<(&'static Setting, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in map {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Value::Object(inner) = value {
            let is_section = SETTINGS
                .iter()
                .any(|s| s.key.starts_with(&format!("{key}.")));
            if !is_section {
                return Err(ConfigError::new(key, format!("unknown section in {file}")));
            }
            flatten(inner, &key, file, out)?;
            continue;
        }
        let setting = find(&key)
            .ok_or_else(|| ConfigError::new(key.clone(), format!("unknown key in {file}")))?;
        if !setting.in_yaml {
            return Err(ConfigError::new(
                key,
                format!(
                    "secrets may not be written in {file}; use {}",
                    setting.env.join(" or ")
                ),
            ));
        }
        let text = match value {
            Value::Null => continue,
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    scalar_text(i).ok_or_else(|| {
                        ConfigError::new(key.clone(), "list items must be plain values")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            // Mappings were handled above, so this is a plain value.
            other => scalar_text(other).unwrap_or_default(),
        };
        out.push((setting, text));
    }
    Ok(())
}

/// The text of a string, number or boolean; `None` for lists, mappings and null.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        _ => None,
    }
}
