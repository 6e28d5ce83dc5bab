//! The LLM and API-key pool families, read from the pool when a scrape comes (a collector), so
//! the request path keeps one set of books: `llm_requests_total{status}`, `llm_latency_seconds`,
//! `llm_token_usage_total`, `llm_concurrent_tasks`, `llm_queue_depth` and the `api_key_*` gauges.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};

use super::family::{counter, counters, gauge, gauges};

use llm::pool::KeyPool;

/// Every `llm_requests_total` status, shown from the start so rates work at once.
pub const LLM_STATUSES: [&str; 8] = [
    "success",
    "parse_error",
    "rate_limited",
    "server_error",
    "rejected",
    "timeout",
    "connect_error",
    "no_key",
];

/// The LLM and key-pool families, read from the pool at each scrape.
#[derive(Debug)]
pub struct LlmCollector {
    pool: Option<Arc<KeyPool>>,
}

impl LlmCollector {
    /// A collector over `pool` (none: the LLM is off and only `api_key_pool_size 0` shows).
    pub fn new(pool: Option<Arc<KeyPool>>) -> Self {
        Self { pool }
    }
}

impl Collector for LlmCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let keys = self.pool.as_ref().map(|p| p.snapshot()).unwrap_or_default();
        gauge(
            &mut e,
            "api_key_pool_size",
            "API keys configured",
            keys.len() as i64,
        )?;
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let stats = &pool.stats;
        let counts = stats.by_status();
        counters(
            &mut e,
            "llm_requests",
            "LLM requests by how they ended",
            LLM_STATUSES.map(|status| {
                let n = counts.get(status).copied().unwrap_or(0);
                ([("status", status)], n)
            }),
        )?;
        let latency = stats.latency();
        latency.encode(e.encode_descriptor(
            "llm_latency_seconds",
            "LLM call latency (answered attempts)",
            None,
            latency.metric_type(),
        )?)?;
        counter(
            &mut e,
            "llm_token_usage",
            "tokens the LLM provider reported using",
            stats.tokens(),
        )?;
        gauge(
            &mut e,
            "llm_concurrent_tasks",
            "LLM requests in flight",
            stats.in_flight() as i64,
        )?;
        gauge(
            &mut e,
            "llm_queue_depth",
            "LLM requests waiting for a free API key",
            stats.waiting() as i64,
        )?;
        type Value = fn(&llm::scheduler::KeySnapshot) -> f64;
        let per_key: [(&str, &str, Value); 5] = [
            ("api_key_total_calls", "calls made with the key", |k| {
                k.calls as f64
            }),
            (
                "api_key_status",
                "1 active, 0 cooling down, -1 disabled",
                |k| k.state.gauge() as f64,
            ),
            (
                "api_key_success_rate",
                "successes over finished calls",
                |k| k.success_rate(),
            ),
            ("api_key_cooldown_seconds", "cooldown left", |k| {
                k.cooldown_seconds
            }),
            ("api_key_in_flight", "requests in flight", |k| {
                f64::from(k.in_flight)
            }),
        ];
        for (name, help, value) in per_key {
            let series = keys.iter().map(|k| ([("key_id", k.id.as_str())], value(k)));
            gauges(&mut e, name, help, series)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::api_keys::ApiKey;
    use crate::config::api_keys::{KeyPoolConfig, KeySpec};

    fn render_llm(pool: Option<Arc<KeyPool>>) -> String {
        let mut r = prometheus_client::registry::Registry::default();
        r.register_collector(Box::new(LlmCollector::new(pool)));
        crate::metrics::render(&r)
    }

    #[test]
    fn every_llm_family_is_exposed_before_any_call() {
        assert!(render_llm(None).contains("api_key_pool_size 0\n"));
        let config = KeyPoolConfig {
            keys: vec![KeySpec::single(ApiKey::new("sk-hidden"))],
            qps_limit: None,
        };
        let pool = KeyPool::new("http://127.0.0.1:9/v1", &config, Duration::from_secs(1), 0);
        let text = render_llm(Some(Arc::new(pool.unwrap())));
        for line in [
            "api_key_pool_size 1\n",
            "llm_requests_total{status=\"rate_limited\"} 0\n",
            "llm_latency_seconds_count 0\n",
            "llm_token_usage_total 0\n",
            "llm_concurrent_tasks 0\n",
            "llm_queue_depth 0\n",
            "api_key_status{key_id=\"default\"} 1",
            "api_key_total_calls{key_id=\"default\"} 0",
            "api_key_cooldown_seconds{key_id=\"default\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("sk-hidden"));
    }
}
