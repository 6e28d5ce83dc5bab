//! `traffic-algo check-config`: the effective configuration as YAML-style lines, each with the
//! layer it came from; secrets show only whether they are set.

use std::process::ExitCode;

use vision::scene::layout::Layout;

use crate::config::settings::SETTINGS;
use crate::config::{Config, Layers};

/// Renders the report printed by `check-config`.
pub fn render(config: &Config, layers: &Layers) -> String {
    let mut out = String::from("# traffic-algo effective configuration (secrets redacted)\n");
    let (path, exists) = &layers.config_file;
    let file_state = if *exists {
        "read"
    } else {
        "not found, defaults used"
    };
    out.push_str(&format!(
        "# config file: {} ({file_state})\n",
        path.display()
    ));
    for setting in SETTINGS {
        let (value, origin) = match layers.values.get(setting.key) {
            Some(raw) if setting.secret => ("<redacted>".to_string(), raw.origin.to_string()),
            Some(raw) => (
                serde_json::Value::String(raw.text.clone()).to_string(),
                raw.origin.to_string(),
            ),
            None => ("<unset>".to_string(), "default".to_string()),
        };
        out.push_str(&format!("{} = {value}  # {origin}\n", setting.key));
    }
    let model = config.model.choice();
    let model_state = if model.path.is_file() {
        "present"
    } else {
        "missing"
    };
    out.push_str(&format!(
        "# model file: {} ({model_state}), {} ({})\n",
        model.path.display(),
        model.precision,
        model.reason
    ));
    let (sessions, threads) = config.model.layout();
    out.push_str(&format!(
        "# inference: {sessions} sessions x {threads} threads ({} cores)\n",
        crate::config::available_cores()
    ));
    let llm = if config.llm_active() {
        let ids: Vec<&str> = config.llm.pool.keys.iter().map(|k| k.id.as_str()).collect();
        format!("on ({} API keys: {})", ids.len(), ids.join(", "))
    } else if config.llm.enabled {
        "off (no API key: set DASHSCOPE_API_KEY or ALGO_LLM_API_KEY)".into()
    } else {
        "off (llm.enabled = false)".into()
    };
    out.push_str(&format!("# llm: {llm}\n"));
    for (id, file) in &config.scenes.files {
        let at = file.path.display().to_string();
        out.push_str(&format!("# scene: {}\n", describe(*id, &file.layout, &at)));
    }
    for decl in &config.cameras {
        if let Some(layout) = &decl.layout {
            let line = describe(decl.id, layout, "cameras.yaml");
            out.push_str(&format!("# scene: {line}\n"));
        }
    }
    out
}

/// One line about camera `id`'s scene from `source`.
fn describe(id: i64, layout: &Layout, source: &str) -> String {
    let calibration = layout.calibration.as_ref().map_or_else(
        || "not calibrated".to_string(),
        |c| {
            format!(
                "calibrated, reprojection error {:.2} px (worst {:.2} px)",
                c.reprojection_error_px, c.worst_error_px
            )
        },
    );
    let interval = layout
        .spec
        .detect_interval
        .map_or_else(|| "stream.frame_interval".to_string(), |s| format!("{s} s"));
    format!(
        "camera {id} from {source}: {} lanes, {} zones, {} lines, {calibration}, detect interval {interval}",
        layout.lanes.len(),
        layout.zones.len(),
        layout.lines.len(),
    )
}

/// Runs `check-config`.
pub fn run(config: &Config, layers: &Layers) -> anyhow::Result<ExitCode> {
    print!("{}", render(config, layers));
    Ok(ExitCode::SUCCESS)
}
