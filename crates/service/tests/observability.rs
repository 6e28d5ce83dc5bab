//! Black-box tests of what operators see: every metric family of SPEC 7 on `/metrics` (checked
//! by Prometheus's own `promtool`), JSON logs, and the live page driven by a real headless
//! Chromium against a real RTSP camera, and against a file camera with a scene: the scene drawn
//! over the frame, edited and saved from the page, and its counts charted.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Reply};
use support::live_camera::LiveCamera;
use support::ws::{Client, start, stop};
use support::{
    RtspServer, SECS, Service, http, media, metric_samples, promtool, promtool_check, repo_root,
};

/// Families that must show on every scrape.
const EXPOSED: [&str; 50] = [
    // The original's 25.
    "detection_total",
    "detection_latency_seconds",
    "detected_objects_total",
    "traffic_groups_total",
    "kafka_messages_sent_total",
    "kafka_messages_received_total",
    "kafka_send_errors_total",
    "kafka_consumer_lag",
    "llm_requests_total",
    "llm_latency_seconds",
    "llm_token_usage_total",
    "llm_concurrent_tasks",
    "api_key_pool_size",
    "api_key_status",
    "api_key_success_rate",
    "api_key_total_calls",
    "api_key_cooldown_seconds",
    "tasks_generated_total",
    "tasks_processed_total",
    "task_queue_size",
    "risk_alerts_total",
    "risk_types_detected_total",
    "active_cameras",
    "pipeline_errors_total",
    "system_info",
    // Ours.
    "llm_queue_depth",
    "api_key_in_flight",
    "frames_received_total",
    "frames_decoded_total",
    "frames_dropped_total",
    "stream_reconnects_total",
    "picture_freezes_total",
    "picture_frozen",
    "picture_cuts_total",
    "picture_moves_total",
    "frames_alerts_held_total",
    "camera_online",
    "ws_clients",
    "ws_connections_total",
    "ws_messages_received_total",
    "ws_messages_sent_total",
    "ws_messages_dropped_total",
    "end_to_end_latency_seconds",
    "frame_stage_seconds",
    "aggregations_total",
    "kafka_publish_dropped_total",
    "saved_frames_deleted_total",
    "saved_frames_bytes",
    "detection_latency_seconds_count",
    "end_to_end_latency_seconds_count",
];

/// Families that a standalone run with a camera, a failing camera, a bad client message and an
/// LLM that answers `high` must move. The Kafka and task families move in streaming mode
/// (`tests/streaming.rs`).
const MOVED: [&str; 19] = [
    "detection_total",
    "detection_latency_seconds_count",
    "detected_objects_total",
    "traffic_groups_total",
    "llm_requests_total",
    "llm_latency_seconds_count",
    "llm_token_usage_total",
    "api_key_total_calls",
    "risk_alerts_total",
    "risk_types_detected_total",
    "pipeline_errors_total",
    "frames_received_total",
    "frames_decoded_total",
    "stream_reconnects_total",
    "ws_connections_total",
    "ws_messages_received_total",
    "ws_messages_sent_total",
    "end_to_end_latency_seconds_count",
    "frame_stage_seconds_count",
];

/// Gauges that must be above zero during that run.
const SET: [&str; 5] = [
    "api_key_pool_size",
    "api_key_status",
    "active_cameras",
    "system_info",
    "ws_clients",
];

/// The family a series belongs to (its name without labels).
fn family(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

fn scrape(service: &Service) -> String {
    let (status, head, body) = http(&service.addr, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_is_exposed_and_moves_during_a_run() {
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "a car cuts in", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["Cut-in", "https://not.a.label/"], "dangerObjectCount": 2, "triggerObjectIds": [1]}]}"#;
    let llm = FakeLlm::start(vec![Reply::text(answer)]).await;
    let rtsp = RtspServer::vtest();
    let service = llm.service(
        "sk-secret-never-shown",
        &[
            ("ALGO_LLM_COOLDOWN_SECONDS", "1"),
            ("ALGO_ALERT_PAUSE_SECONDS", "0"),
        ],
    );
    let before = metric_samples(&scrape(&service));
    let mut c = Client::connect(&service).await;
    c.send(start(1, &rtsp.url(0))).await;
    c.send(start(2, "rtsp://127.0.0.1:9/refused")).await;
    c.send(json!({"type": "no_such_type", "data": {}})).await;
    c.recv_type("error", SECS(5)).await;

    // Run until an LLM alert has come back on a result, and a few results after it.
    let deadline = Instant::now() + SECS(60);
    let mut after_alert = None;
    while after_alert.is_none_or(|n| n < 2) {
        assert!(Instant::now() < deadline, "no LLM alert within 60 s");
        let r = c.recv_type("detection_result", SECS(15)).await;
        let llm_alert = r["data"]["dangerousDrivingResults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "llm");
        after_alert = match after_alert {
            Some(n) => Some(n + 1),
            None if llm_alert => Some(0),
            None => None,
        };
    }
    let text = scrape(&service);
    let now = metric_samples(&text);

    // A family exists with its `# TYPE` line; labelled families of parts that did not run (the
    // Kafka ones here) have no series yet.
    for name in EXPOSED {
        let count = format!("{name}_count");
        let typed = format!("# TYPE {name} ");
        assert!(
            text.contains(&typed) || now.keys().any(|s| family(s) == name || family(s) == count),
            "family {name} missing from\n{text}"
        );
    }
    for name in MOVED {
        let moved = now
            .iter()
            .filter(|(s, _)| family(s) == name)
            .any(|(s, v)| *v > before.get(s).copied().unwrap_or(0.0));
        assert!(moved, "family {name} did not move:\n{text}");
    }
    for name in SET {
        let set = now.iter().any(|(s, v)| family(s) == name && *v > 0.0);
        assert!(set, "gauge {name} is not above zero:\n{text}");
    }
    for series in [
        "camera_online{camera_id=\"1\"}",
        "system_info{version=\"0.1.0\",mode=\"standalone\",model=\"yolov8n.onnx\",llm_model=\"qwen-vl-plus\"}",
        "risk_types_detected_total{risk_type=\"cut_in\",source=\"llm\"}",
        "risk_types_detected_total{risk_type=\"other\",source=\"llm\"}",
        "pipeline_errors_total{stage=\"source\"}",
    ] {
        assert!(
            now.get(series).is_some_and(|v| *v >= 1.0),
            "{series} in\n{text}"
        );
    }
    // Every stage of a frame's way to the client timed it.
    for stage in ["decode", "queue", "inference", "judge", "deliver"] {
        let series = format!("frame_stage_seconds_count{{stage=\"{stage}\"}}");
        assert!(
            now.get(&series).is_some_and(|v| *v >= 1.0),
            "{series} in\n{text}"
        );
    }
    assert_eq!(now.get("active_cameras"), Some(&2.0), "{text}");
    assert_eq!(now.get("ws_clients"), Some(&1.0), "{text}");
    assert!(!text.contains("sk-secret") && !text.contains("rtsp://"));
    let complaints = promtool_check(&text);
    assert!(
        complaints.is_empty(),
        "promtool check metrics:\n{complaints}"
    );

    // A stopped camera's series leave /metrics (clients choose ids: start/stop loops must not
    // grow it); the running camera's stay.
    c.send(stop(1)).await;
    c.recv_type("stream_stopped", SECS(5)).await;
    let text = scrape(&service);
    assert!(!text.contains("camera_id=\"1\""), "{text}");
    assert!(
        text.contains("frames_received_total{camera_id=\"2\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_say_each_camera_state_change_once() {
    let service = Service::start_logging(&[("ALGO_LOG_FORMAT", "json")]);
    let mut cam = LiveCamera::start(4, service).await;
    let c = &mut cam.client;
    c.recv_type("detection_result", SECS(15)).await;
    c.recv_type("detection_result", SECS(5)).await;
    c.send(stop(4)).await;
    c.recv_type("stream_stopped", SECS(5)).await;
    let log = cam.service.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let states: Vec<&str> = lines
        .iter()
        .filter(|v| v["fields"]["message"] == "camera state" && v["fields"]["camera"] == 4)
        .map(|v| v["fields"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["online"], "{log}");
    let started = lines
        .iter()
        .find(|v| v["fields"]["message"] == "camera started")
        .unwrap_or_else(|| panic!("no `camera started` in {log}"));
    assert_eq!(started["fields"]["camera"], 4);
    assert!(
        started["fields"]["url"]
            .as_str()
            .unwrap()
            .starts_with("rtsp://127.0.0.1:")
    );
    assert!(
        lines
            .iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string())
    );
    // Nothing per frame at INFO.
    assert!(lines.len() < 12, "{log}");
}

/// Runs `tests/browser/live_page.mjs` against `service` and returns what the page showed.
fn drive_page(service: &Service, camera: &str, screenshot: &str) -> Value {
    drive_page_at(service, "", camera, screenshot)
}

/// [`drive_page`] with `fragment` after the page's URL (`#token=...`).
fn drive_page_at(service: &Service, fragment: &str, camera: &str, screenshot: &str) -> Value {
    let url = format!("http://{}/{fragment}", service.addr);
    let (seen, shot) = run_browser("live_page.mjs", &[&url, camera], screenshot);
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(768), Some(576)),
        "{seen}"
    );
    assert!(seen["boxes"].as_u64().unwrap() > 0, "{seen}");
    // The frame itself was painted, not only the boxes: most sampled pixels are lit.
    let lit = seen["litSamples"].as_f64().unwrap() / seen["samples"].as_f64().unwrap();
    assert!(lit > 0.5, "{seen}");
    assert!(
        seen["cameraText"]
            .as_str()
            .unwrap()
            .contains("vehicles/min"),
        "{seen}"
    );
    assert!(
        seen["facts"].as_str().unwrap().contains("Objects"),
        "{seen}"
    );
    assert_screenshot(&shot);
    seen
}

/// Runs `tests/browser/SCRIPT` with `args` and the path of `target/screenshots/SCREENSHOT`;
/// returns the JSON line it printed last, with no page or console error in it, and that path.
fn run_browser(script: &str, args: &[&str], screenshot: &str) -> (Value, PathBuf) {
    let browser = repo_root().join("crates/service/tests/browser");
    let modules = browser.join("node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "playwright-core missing in {}: run scripts/setup.sh",
        modules.display()
    );
    let shots = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(screenshot);
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(browser.join(script))
        .args(args)
        .arg(&shot)
        .output()
        .expect("node (see scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}\n{stderr}"
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["problems"], json!([]), "{seen}");
    (seen, shot)
}

/// A PNG of a page with something on it.
fn assert_screenshot(shot: &Path) {
    let png = std::fs::read(shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}: {} bytes",
        shot.display(),
        png.len()
    );
}

#[test]
fn the_live_page_shows_a_camera_started_from_its_form() {
    let rtsp = RtspServer::vtest();
    let service = Service::start(&[]);
    let (status, head, body) = http(&service.addr, "GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(body.contains("/static/app.js"));
    // The page's modules are served from this origin; nothing else is.
    for module in ["app.js", "scene.js", "objects.js", "editor.js", "chart.js"] {
        let (status, head, _) = http(&service.addr, "GET", &format!("/static/{module}"), &[]);
        assert_eq!(status, 200, "{module}");
        assert!(head.contains("content-type: text/javascript"), "{head}");
    }
    assert_eq!(http(&service.addr, "GET", "/static/other.js", &[]).0, 404);

    let seen = drive_page(&service, &rtsp.url(0), "live-page.png");
    assert_eq!(
        (seen["camera"].as_u64(), seen["stopped"].as_bool()),
        (Some(7), Some(true))
    );
    // The camera has no scene: the page asked, took the 404 for none and drew none.
    assert_eq!(
        (&seen["sceneInfo"], &seen["sceneLines"]),
        (&json!("No scene"), &json!("0")),
        "{seen}"
    );
    assert!(
        seen["handled"]
            .as_array()
            .unwrap()
            .contains(&json!({"path": "/api/cameras/7/scene", "status": 404})),
        "{seen}"
    );
    // The page's Stop button stopped the camera in the service.
    assert_eq!(service.cameras()["data"], json!([]));
}

#[test]
fn the_live_page_watches_a_declared_camera_by_itself() {
    let rtsp = RtspServer::vtest();
    let declared = format!("1={}", rtsp.url(0));
    let service = Service::start_with(&["--camera", &declared], &[]);
    let seen = drive_page(&service, "--declared", "live-page-declared.png");
    assert_eq!(seen["camera"], 1, "{seen}");
}

/// The `{code,msg,data}` answer of `GET path`, asserted 200.
fn get_data(service: &Service, path: &str) -> Value {
    let (status, _, body) = http(&service.addr, "GET", path, &[]);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
}

/// A point of a scene as `[x, y]`.
fn point(v: &Value) -> [f64; 2] {
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

#[test]
fn the_live_page_draws_edits_and_charts_a_camera_scene() {
    // Camera 1 plays the road clip in a loop with its evaluation scene (two lanes, a zone, the
    // `count-approach` line, 0.3 s cadence), counting into two-minute bins.
    let dir = tempfile::tempdir().unwrap();
    let scenes = dir.path().join("scenes");
    std::fs::create_dir_all(&scenes).unwrap();
    let file_scene = repo_root().join("tests/data/eval/scenes/road-cars.yaml");
    std::fs::copy(&file_scene, scenes.join("1.yaml")).unwrap();
    let clip = media("road-cars-h264.mp4").canonicalize().unwrap();
    let declared = format!("1=file://{}?loop=1", clip.display());
    let db = dir.path().join("traffic.db");
    let service = Service::start_with(
        &["--camera", &declared],
        &[
            ("ALGO_SCENES_DIR", scenes.to_str().unwrap()),
            ("ALGO_ALLOWED_SOURCE_SCHEMES", "file"),
            ("ALGO_DATABASE_PATH", db.to_str().unwrap()),
            ("ALGO_MEASUREMENT_BIN_SECONDS", "120"),
        ],
    );
    let before = get_data(&service, "/api/cameras/1/scene");
    let url = format!("http://{}/", service.addr);
    let (seen, shot) = run_browser("scene_page.mjs", &[&url], "scene-page.png");

    // The file's scene was drawn over the 1280x720 frame, the line where the scene puts it.
    let drawn = &seen["drawn"];
    assert_eq!(
        (&drawn["lanes"], &drawn["zones"], &drawn["lines"]),
        (&json!("2"), &json!("1"), &json!("1")),
        "{seen}"
    );
    assert_eq!(
        (&drawn["width"], &drawn["height"]),
        (&json!(1280), &json!(720))
    );
    assert!(drawn["onLine"].as_u64().unwrap() >= 6, "{seen}");
    // Its counts came from the results: cars come towards the camera, crossing `in`.
    let counted = &seen["counted"][0];
    assert_eq!(counted["name"], "count-approach", "{seen}");
    assert!(counted["in"].as_u64().unwrap() >= 1, "{seen}");

    // The line added by two clicks is saved in native pixels (the canvas is shown smaller),
    // beside the rest of the scene, kept as it was (the editor does not show speed limits or
    // the cadence).
    let saved = get_data(&service, "/api/cameras/1/scene");
    assert_eq!(saved["source"], "api", "{saved}");
    let lines = saved["scene"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{saved}");
    assert_eq!(lines[0], before["scene"]["lines"][0]);
    assert_eq!(lines[1]["name"], "web-line", "{saved}");
    let clicks = seen["lineClicks"].as_array().unwrap();
    for (got, click) in lines[1]["points"].as_array().unwrap().iter().zip(clicks) {
        let [x, y] = point(got);
        let [fx, fy] = point(click);
        assert!(
            (x - fx * 1280.0).abs() <= 2.0 && (y - fy * 720.0).abs() <= 2.0,
            "clicked at {click}, saved {got}"
        );
    }
    // The zone closed by a double click has the four corners clicked, no more.
    let zones = saved["scene"]["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 2, "{saved}");
    assert_eq!(zones[0], before["scene"]["zones"][0]);
    assert_eq!(
        (&zones[1]["name"], &zones[1]["kind"]),
        (&json!("web-zone"), &json!("no_stopping")),
        "{saved}"
    );
    let corners = zones[1]["polygon"].as_array().unwrap();
    let clicked = seen["zoneClicks"].as_array().unwrap();
    assert_eq!(corners.len(), clicked.len(), "{saved}");
    for (got, click) in corners.iter().zip(clicked) {
        let ([x, y], [fx, fy]) = (point(got), point(click));
        assert!(
            (x - fx * 1280.0).abs() <= 2.0 && (y - fy * 720.0).abs() <= 2.0,
            "clicked at {click}, saved {got}"
        );
    }
    for key in ["lanes", "calibration", "detect_interval"] {
        assert_eq!(saved["scene"][key], before["scene"][key], "{key}");
    }
    // The page said what the service answered, and draws the saved scene.
    let error = saved["reprojectionErrorPx"].as_f64().unwrap();
    let said = seen["saved"].as_str().unwrap();
    assert!(
        said.starts_with("Saved") && said.contains(&format!("{error:.2} px")),
        "{said}"
    );
    assert_eq!(
        (&seen["final"]["lines"], &seen["final"]["zones"]),
        (&json!("2"), &json!("2")),
        "{seen}"
    );
    assert_eq!(seen["final"]["scene"], "api", "{seen}");

    // Four calibration pairs with their ground points on one line: the service refused them,
    // the page shows its message, and the saved scene did not change.
    assert_eq!(seen["pairs"], 4, "{seen}");
    let refused = seen["refused"].as_str().unwrap();
    assert!(
        refused.contains("`calibration`") && refused.contains("on one line"),
        "{refused}"
    );
    assert_eq!(
        seen["handled"],
        json!([{"path": "/api/cameras/1/scene", "status": 400}]),
        "{seen}"
    );
    let after = get_data(&service, "/api/cameras/1/scene");
    assert_eq!(after["scene"], saved["scene"]);

    // The chart drew the crossings the database holds (it only grows after the page read it).
    let chart = &seen["chart"];
    assert_eq!(chart["state"], "ok", "{seen}");
    // Two-minute bins, learnt from the first answer, drawn in half-hour slots (the first of
    // the chart's slots that is a multiple of them).
    assert_eq!(chart["slot"], "1800", "{seen}");
    assert!(
        chart["lines"].as_str().unwrap().contains("count-approach"),
        "{seen}"
    );
    let drawn_total: u64 = chart["total"].as_str().unwrap().parse().unwrap();
    let rows = get_data(&service, "/api/cameras/1/counts?bin=3600");
    let stored: u64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert!(
        drawn_total >= 1 && drawn_total <= stored,
        "chart {drawn_total}, database {stored}: {seen}"
    );
    assert_eq!(seen["chartNote"], "", "{seen}");
    assert_screenshot(&shot);
    assert_screenshot(&shot.with_file_name("scene-page-editor.png"));
}

/// Metric names in a PromQL text: identifiers right before a `{` or a `[`.
fn metric_names(promql: &str) -> Vec<String> {
    let bytes = promql.as_bytes();
    let mut names = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'{' && *b != b'[' {
            continue;
        }
        let start = bytes[..i]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b':'))
            .map_or(0, |p| p + 1);
        if start < i && bytes[start].is_ascii_alphabetic() {
            names.push(promql[start..i].to_string());
        }
    }
    names
}

#[test]
fn deploy_files_pass_promtool_and_name_real_metric_families() {
    let root = repo_root();
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/alerts.yml"],
    ] {
        let out = promtool().args(args).current_dir(&root).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let known = |name: &str| {
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        name == "up" || EXPOSED.contains(&family)
    };

    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let exprs: String = rules
        .lines()
        .filter(|l| !l.contains("summary:") && !l.contains("description:"))
        .collect::<Vec<_>>()
        .join("\n");
    let names = metric_names(&exprs);
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(known(&name), "alerts.yml uses unknown metric {name}");
    }

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/traffic-algo.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut used = std::collections::HashSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            for name in metric_names(target["expr"].as_str().unwrap()) {
                assert!(
                    known(&name),
                    "dashboard panel {} uses unknown metric {name}",
                    panel["title"]
                );
                used.insert(name.strip_suffix("_bucket").unwrap_or(&name).to_string());
            }
        }
    }
    // The dashboard shows the original's families (system_info is its instance variable).
    for name in &EXPOSED[..24] {
        assert!(used.contains(*name), "the dashboard does not show {name}");
    }
}

#[test]
fn the_live_page_takes_its_token_from_its_url() {
    let rtsp = RtspServer::vtest();
    let declared = format!("1={}", rtsp.url(0));
    let service = Service::start_with(
        &["--camera", &declared],
        &[("ALGO_AUTH_TOKEN", "page-token-123")],
    );
    // The page itself is open; its data is not without the token.
    assert_eq!(http(&service.addr, "GET", "/", &[]).0, 200);
    assert_eq!(http(&service.addr, "GET", "/api/cameras", &[]).0, 401);
    let seen = drive_page_at(
        &service,
        "#token=page-token-123",
        "--declared",
        "live-page-token.png",
    );
    assert_eq!(seen["camera"], 1, "{seen}");
    let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
    let m = metric_samples(&text);
    assert_eq!(
        m.get("auth_failures_total{endpoint=\"ws\"}"),
        Some(&0.0),
        "{text}"
    );
    assert_eq!(
        m.get("auth_failures_total{endpoint=\"api\"}"),
        Some(&1.0),
        "{text}"
    );
}
