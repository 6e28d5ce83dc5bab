//! The tracing subscriber: human-readable or JSON lines on stderr (stdout carries command output),
//! filtered by `log.level`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `log.level` was validated when the configuration loaded.
pub fn init(config: &LogConfig) {
    // ONNX Runtime logs every graph rewrite at info; keep it to warnings unless asked for.
    let directives = if config.level.contains("ort") {
        config.level.clone()
    } else {
        format!("{},ort=warn", config.level)
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling commands twice) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
