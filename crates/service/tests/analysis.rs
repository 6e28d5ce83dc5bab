//! In-process tests of a camera's pipeline for situations a client of the running service
//! cannot set up on purpose: the shared inference thread dies (a panicking job), and each camera
//! must say so and stop instead of reconnecting forever; a camera restarted on a new URL while
//! a frame of the old one waits for the detector must not deliver that frame.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camera::broadcast::Broadcast;
use camera::hub::CameraHub;
use camera::pipeline::Pipeline;
use serde_json::Value;
use service::config::Config;
use service::config::layers::Overrides;
use support::looping;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The configuration with the test model and `env`.
fn config(env: &[(&str, &str)]) -> Config {
    let mut vars = HashMap::from([(
        "ALGO_YOLO_MODEL_NAME".to_string(),
        support::model().display().to_string(),
    )]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(&vars, &Overrides::default()).unwrap().0
}

/// The pipeline the service would run with `config`.
fn parts(config: &Config) -> Arc<Pipeline> {
    service::app::parts(config, &TaskTracker::new(), &CancellationToken::new())
        .unwrap()
        .pipeline
}

fn hub(config: &Config, pipeline: &Arc<Pipeline>) -> CameraHub {
    CameraHub::new(
        Arc::clone(pipeline),
        Duration::from_millis(500),
        4,
        config.security.sources.clone(),
        CancellationToken::new(),
        TaskTracker::new(),
    )
}

/// The next message of a subscription, as JSON.
async fn next(events: &mut broadcast::Receiver<Broadcast>, deadline: Instant) -> Value {
    let event = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        events.recv(),
    )
    .await
    .expect("a message before the deadline")
    .unwrap();
    serde_json::to_value(&*event.message).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_the_old_source_is_not_delivered_after_a_restart() {
    // One session, so that holding it holds every frame.
    let config = config(&[
        ("ALGO_ALLOWED_SOURCE_SCHEMES", "file"),
        ("ALGO_INFERENCE_SESSIONS", "1"),
    ]);
    let pipeline = parts(&config);
    let hub = hub(&config, &pipeline);
    let mut sub = hub.start(1, 1, &looping("vtest-h264.mp4")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while next(&mut sub.events, deadline).await["data"]["imageWidth"] != 768 {}
    // Hold the detector for 3 s: the camera's next frame (0.5 s on) waits for it.
    pipeline
        .worker
        .submit(Box::new(|_| std::thread::sleep(Duration::from_secs(3))))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restart on traffic-street (640 wide) while the vtest frame (768) waits.
    hub.start(1, 1, &looping("traffic-street-h264.mp4"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = next(&mut sub.events, deadline).await;
        if v["type"] == "detection_result" {
            assert_eq!(
                v["data"]["imageWidth"], 640,
                "old source delivered after restart"
            );
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_whose_analysis_cannot_run_goes_offline_instead_of_reconnecting() {
    // One session: when its thread dies, every later detection fails.
    let config = config(&[("ALGO_INFERENCE_SESSIONS", "1")]);
    let pipeline = parts(&config);
    let killed = pipeline.worker.run(|_| -> () { panic!("injected fault") });
    assert!(killed.is_err());

    let hub = hub(&config, &pipeline);
    hub.pin(1, &looping("vtest-h264.mp4")).unwrap();
    let mut sub = hub.subscribe(7, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut states = Vec::new();
    let stopped = loop {
        let v = next(&mut sub.events, deadline).await;
        assert_ne!(v["type"], "detection_result", "{v}");
        if v["type"] == "camera_status" {
            states.push(v["data"]["state"].as_str().unwrap().to_string());
        }
        if v["type"] == "stream_stopped" {
            break v;
        }
    };
    let reason = stopped["data"]["reason"].to_string();
    assert!(
        reason.contains("analysis stopped: inference unavailable"),
        "{stopped}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("offline"),
        "{states:?}"
    );
    assert!(!states.iter().any(|s| s == "reconnecting"), "{states:?}");
    let cams = hub.cameras();
    assert!(
        cams[0].message.contains("analysis stopped"),
        "{:?}",
        cams[0].message
    );
}
