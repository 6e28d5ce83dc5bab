//! What the LLM side is configured with: the API keys of the pool and their limits, and the
//! confidence thresholds that give a level to an answer without one. The service reads these
//! from its configuration (`llm.*`, `config/api_keys.yaml`) and hands them over.

use std::fmt;

/// Requests per second a key may send when its entry does not say.
pub const DEFAULT_QPS: f64 = 5.0;
/// Requests one key may have in flight when its entry does not say.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 10;

/// An API key; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One usable key with its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// Name in logs and metrics (never the key itself).
    pub id: String,
    /// The key.
    pub api_key: ApiKey,
    /// Lower numbers are used first.
    pub priority: u32,
    /// Requests per second, enforced as an even spacing of `1 / qps_limit`.
    pub qps_limit: f64,
    /// Requests in any 60 s window, when limited.
    pub rpm_limit: Option<u32>,
    /// Requests in flight at once.
    pub max_in_flight: u32,
}

impl KeySpec {
    /// The single key of `llm.api_key`, with the default limits.
    pub fn single(api_key: ApiKey) -> Self {
        Self {
            id: "default".into(),
            api_key,
            priority: 1,
            qps_limit: DEFAULT_QPS,
            rpm_limit: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The pool as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPoolConfig {
    /// The enabled keys.
    pub keys: Vec<KeySpec>,
    /// Requests per second over all keys, when capped.
    pub qps_limit: Option<f64>,
}

/// Confidence thresholds that map an LLM confidence to a level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskThresholds {
    /// Low from here.
    pub low: f32,
    /// Medium from here.
    pub medium: f32,
    /// High from here.
    pub high: f32,
}
