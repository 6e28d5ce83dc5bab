//! The text formats `/metrics` answers in: OpenMetrics, as `prometheus-client` encodes it,
//! and the classic Prometheus text format made from it.

use prometheus_client::registry::Registry;

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    out
}

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text turned into the classic Prometheus text format (0.0.4), for scrapers that
/// do not ask for OpenMetrics (and `promtool check metrics`, which only reads the classic one).
/// The two differ, for what we emit, in three things: a counter family is named without
/// `_total` in OpenMetrics' `# HELP`/`# TYPE` lines but with it in the classic format, and the
/// classic format has no `# UNIT` lines and no `# EOF` line. Samples are the same.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = help.replace(rest) {
                push_line(&mut out, &["# HELP ", h]);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = kind == "counter" && !name.ends_with("_total");
            let suffix = if counter { "_total" } else { "" };
            if let Some(h) = help.take() {
                let text = h.strip_prefix(name).unwrap_or(h);
                push_line(&mut out, &["# HELP ", name, suffix, text]);
            }
            push_line(&mut out, &["# TYPE ", name, suffix, " ", kind]);
            continue;
        }
        if let Some(h) = help.take() {
            push_line(&mut out, &["# HELP ", h]);
        }
        push_line(&mut out, &[line]);
    }
    out
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP llm_requests LLM requests.\n# TYPE llm_requests counter\n\
                  llm_requests_total{status=\"success\"} 3\n\
                  # HELP up_seconds Uptime.\n# TYPE up_seconds gauge\n# UNIT up_seconds seconds\n\
                  up_seconds 5\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP llm_requests_total LLM requests.\n# TYPE llm_requests_total counter\n\
             llm_requests_total{status=\"success\"} 3\n\
             # HELP up_seconds Uptime.\n# TYPE up_seconds gauge\nup_seconds 5\n"
        );
    }
}
