//! Reading one key: its raw text as a string, number, duration, list, URL or secret, checked
//! against a range or a set of choices. A failure names the key, the offending value (unless the
//! key is secret) and the layer the value came from.

use std::time::Duration;

use crate::config::settings::find;
use crate::config::{ConfigError, Layers, Secret};

/// Typed access to the raw text of each key.
pub(super) struct Reader<'a> {
    /// The raw values and where each came from.
    pub(super) layers: &'a Layers,
}

impl Reader<'_> {
    pub(super) fn text(&self, key: &str) -> &str {
        self.layers
            .values
            .get(key)
            .map(|v| v.text.as_str())
            .unwrap_or("")
    }

    pub(super) fn err(&self, key: &str, reason: impl std::fmt::Display) -> ConfigError {
        let secret = find(key).is_some_and(|s| s.secret);
        match self.layers.values.get(key) {
            Some(raw) if secret => {
                ConfigError::new(key, format!("value from {} {reason}", raw.origin))
            }
            Some(raw) => ConfigError::new(
                key,
                format!("{:?} (from {}) {reason}", raw.text, raw.origin),
            ),
            None => ConfigError::new(key, format!("is not set; {reason}")),
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<String, ConfigError> {
        let text = self.text(key).trim();
        if text.is_empty() {
            return Err(self.err(key, "must not be empty"));
        }
        Ok(text.to_string())
    }

    pub(super) fn one_of(&self, key: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let text = self.text(key).trim().to_ascii_lowercase();
        if allowed.contains(&text.as_str()) {
            Ok(text)
        } else {
            Err(self.err(key, format!("must be one of: {}", allowed.join(", "))))
        }
    }

    pub(super) fn secret(&self, key: &str) -> Option<Secret> {
        let text = self.text(key).trim();
        (!text.is_empty()).then(|| Secret::new(text))
    }

    pub(super) fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.text(key).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.err(key, "must be true or false")),
        }
    }

    pub(super) fn number(&self, key: &str, min: f64, max: f64) -> Result<f64, ConfigError> {
        let range = || format!("must be a number from {min} to {max}");
        let v: f64 = self
            .text(key)
            .trim()
            .parse()
            .map_err(|_| self.err(key, range()))?;
        if v.is_finite() && (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(key, range()))
        }
    }

    pub(super) fn integer(&self, key: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let range = || format!("must be a whole number from {min} to {max}");
        let v: u64 = self
            .text(key)
            .trim()
            .parse()
            .map_err(|_| self.err(key, range()))?;
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(key, range()))
        }
    }

    /// Seconds, strictly positive unless `allow_zero`.
    pub(super) fn seconds(
        &self,
        key: &str,
        allow_zero: bool,
        max: f64,
    ) -> Result<Duration, ConfigError> {
        let v = self.number(key, 0.0, max)?;
        if v == 0.0 && !allow_zero {
            return Err(self.err(key, "must be more than 0 seconds"));
        }
        Ok(Duration::from_secs_f64(v))
    }

    pub(super) fn list(&self, key: &str) -> Vec<String> {
        self.text(key)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub(super) fn url(&self, key: &str, schemes: &[&str]) -> Result<String, ConfigError> {
        let text = self.string(key)?;
        let ok = text.split_once("://").is_some_and(|(scheme, rest)| {
            schemes.contains(&scheme.to_ascii_lowercase().as_str())
                && !rest.is_empty()
                && !rest.contains(char::is_whitespace)
        });
        if ok {
            Ok(text.trim_end_matches('/').to_string())
        } else {
            let expected = schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>();
            Err(self.err(
                key,
                format!("must be a URL starting with {}", expected.join(" or ")),
            ))
        }
    }
}
