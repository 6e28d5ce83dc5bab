//! Black-box tests of scene geometry (SPEC section 9) through the binary: the scene API
//! (`GET`/`PUT`/`DELETE /api/cameras/{id}/scene`: envelope, field-naming refusals, saved
//! file, sources and their precedence), a scene applied to a running camera without a restart
//! (its `detectedObjects` gain `ground`, `zone`; an `exclude` zone stops tracking), and bad
//! scene files stopping start-up with exit code 64.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::live_camera::LiveCamera;
use support::{Service, http, http_with_body, run, traffic_algo};

/// A calibration of a 768x576 frame: a trapezoid on the ground plane 10 m wide and 20 m deep.
fn calibration() -> Value {
    json!({
        "image": [[100, 550], [668, 550], [520, 250], [248, 250]],
        "ground": [[0, 0], [10, 0], [10, 20], [0, 20]]
    })
}

fn envelope(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn put(service: &Service, id: i64, scene: &Value) -> (u16, Value) {
    let (status, _, body) = http_with_body(
        &service.addr,
        "PUT",
        &format!("/api/cameras/{id}/scene"),
        &[("Content-Type", "application/json")],
        &scene.to_string(),
    );
    (status, envelope(&body))
}

fn get(service: &Service, id: i64) -> (u16, Value) {
    let (status, _, body) = http(
        &service.addr,
        "GET",
        &format!("/api/cameras/{id}/scene"),
        &[],
    );
    (status, envelope(&body))
}

#[test]
fn the_scene_api_checks_saves_and_forgets() {
    let service = Service::start(&[]);
    let (status, v) = get(&service, 7);
    assert_eq!((status, v["code"].as_u64()), (404, Some(404)), "{v}");

    // Refusals name what is wrong, in the envelope, and change nothing.
    let bad = [
        (
            json!({"lanes": [{"name": "a", "polygon": [[0, 0], [5, 5]]}]}),
            "lanes[0].polygon",
        ),
        (json!({"lanez": []}), "lanez"),
        (
            json!({"zones": [{"name": "a", "kind": "parking", "polygon": [[0, 0], [9, 0], [9, 9]]}]}),
            "parking",
        ),
        (
            json!({"calibration": {"image": [[0, 0], [1, 0]], "ground": [[0, 0], [1, 0]]}}),
            "calibration",
        ),
        (json!({"detect_interval": 0}), "detect_interval"),
    ];
    for (scene, named) in bad {
        let (status, v) = put(&service, 7, &scene);
        assert_eq!(status, 400, "{scene}: {v}");
        assert_eq!(v["code"], 400);
        assert!(v["msg"].as_str().unwrap().contains(named), "{scene}: {v}");
    }
    // A calibration with one point 3 m off: refused by its reprojection error.
    let mut off = calibration();
    off["image"].as_array_mut().unwrap().push(json!([384, 400]));
    off["ground"].as_array_mut().unwrap().push(json!([8, 12]));
    let (status, v) = put(&service, 7, &json!({ "calibration": off }));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("reprojection error"),
        "{v}"
    );
    assert_eq!(get(&service, 7).0, 404, "refusals applied nothing");
    let (status, _, _) = http(&service.addr, "GET", "/api/cameras/x/scene", &[]);
    assert_eq!(status, 400);

    let scene = json!({
        "calibration": calibration(),
        "detect_interval": 0.5,
        "lanes": [{"name": "nb-1", "polygon": [[100, 550], [384, 550], [384, 250], [248, 250]],
                   "direction": [[300, 500], [300, 300]], "speed_limit_kmh": 30}],
        "zones": [{"name": "kerb", "kind": "no_stopping", "polygon": [[0, 0], [50, 0], [50, 50]]}],
        "lines": [{"name": "stop", "points": [[100, 500], [668, 500]]}]
    });
    let (status, v) = put(&service, 7, &scene);
    assert_eq!(status, 200, "{v}");
    let data = &v["data"];
    assert_eq!(data["cameraId"], 7);
    assert_eq!(data["source"], "api");
    assert!(data["reprojectionErrorPx"].as_f64().unwrap() < 1e-6, "{v}");
    assert_eq!(data["scene"]["lanes"][0]["speed_limit_kmh"], 30.0);
    let saved = service.dir.path().join("scenes/7.yaml");
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains("nb-1"), "{text}");
    let (status, v) = get(&service, 7);
    assert_eq!(status, 200);
    assert_eq!(v["data"]["scene"], data["scene"]);

    let (status, _, body) = http(&service.addr, "DELETE", "/api/cameras/7/scene", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(envelope(&body)["data"].is_null(), "no other source: {body}");
    assert!(!saved.exists());
    assert_eq!(get(&service, 7).0, 404);
    let (status, _, _) = http(&service.addr, "DELETE", "/api/cameras/7/scene", &[]);
    assert_eq!(status, 404);
}

#[test]
fn later_sources_win_and_the_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = dir.path().join("scenes");
    std::fs::create_dir(&scenes).unwrap();
    std::fs::write(scenes.join("3.yaml"), "detect_interval: 0.4\n").unwrap();
    std::fs::write(scenes.join("4.yaml"), "detect_interval: 0.4\n").unwrap();
    let cameras = dir.path().join("cameras.yaml");
    std::fs::write(
        &cameras,
        "cameras:\n  - id: 4\n    url: rtsp://127.0.0.1:9/none\n    enabled: false\n    scene: {detect_interval: 0.3}\n",
    )
    .unwrap();
    let env = [
        ("ALGO_SCENES_DIR", scenes.to_str().unwrap()),
        ("ALGO_CAMERAS_FILE", cameras.to_str().unwrap()),
    ];
    let service = Service::start(&env);
    let (_, v) = get(&service, 3);
    assert_eq!(
        (
            v["data"]["source"].as_str(),
            v["data"]["scene"]["detect_interval"].as_f64()
        ),
        (Some("file"), Some(0.4))
    );
    let (_, v) = get(&service, 4);
    assert_eq!(
        (
            v["data"]["source"].as_str(),
            v["data"]["scene"]["detect_interval"].as_f64()
        ),
        (Some("cameras_yaml"), Some(0.3))
    );
    let (status, _) = put(&service, 4, &json!({"detect_interval": 1.0}));
    assert_eq!(status, 200);
    assert_eq!(get(&service, 4).1["data"]["source"], "api");
    // Forgetting the API's scene brings back the cameras.yaml one.
    let (status, _, body) = http(&service.addr, "DELETE", "/api/cameras/4/scene", &[]);
    assert_eq!(status, 200);
    assert_eq!(envelope(&body)["data"]["source"], "cameras_yaml", "{body}");
    let (status, _) = put(&service, 5, &json!({"detect_interval": 2.0}));
    assert_eq!(status, 200);
    drop(service);

    let service = Service::start(&env);
    let (_, v) = get(&service, 5);
    assert_eq!(
        (
            v["data"]["source"].as_str(),
            v["data"]["scene"]["detect_interval"].as_f64()
        ),
        (Some("file"), Some(2.0)),
        "{v}"
    );
}

#[test]
fn a_bad_scene_file_stops_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scenes")).unwrap();
    std::fs::write(
        dir.path().join("scenes/2.yaml"),
        "lines:\n  - {name: a, points: [[1, 1], [1, 1]]}\n",
    )
    .unwrap();
    let out = run(traffic_algo(dir.path()).arg("check-config"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("2.yaml") && stderr.contains("lines[0].points"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("scenes/2.yaml"),
        format!("calibration: {}\n", calibration()),
    )
    .unwrap();
    let out = run(traffic_algo(dir.path()).arg("check-config"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("# scene: camera 2 from") && stdout.contains("reprojection error 0.00 px"),
        "{stdout}"
    );
}

/// The next `detection_result` with objects, failing on any sign of a restart.
async fn objects(cam: &mut LiveCamera, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = cam.client.recv(left).await;
        if v["type"] == "camera_status" {
            assert_ne!(
                v["data"]["state"], "connecting",
                "the camera restarted: {v}"
            );
        }
        if v["type"] == "detection_result" {
            let objects = v["data"]["detectedObjects"].as_array().unwrap().clone();
            if !objects.is_empty() {
                return objects;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_applies_to_a_running_camera_without_a_restart() {
    let service = Service::start(&[("ALGO_FRAME_INTERVAL", "0.5")]);
    let mut cam = LiveCamera::start(1, service).await;
    cam.client
        .recv_state("online", Duration::from_secs(30))
        .await;
    let before = objects(&mut cam, Duration::from_secs(30)).await;
    assert!(
        before
            .iter()
            .all(|o| o.get("zone").is_none() && o.get("ground").is_none())
    );

    let whole = json!([[0, 0], [768, 0], [768, 576], [0, 576]]);
    let scene = json!({
        "calibration": calibration(),
        "zones": [{"name": "plaza", "kind": "roi", "polygon": whole}]
    });
    let (status, v) = put(&cam.service, 1, &scene);
    assert_eq!(status, 200, "{v}");
    // Within a few frames, every object is placed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let placed = loop {
        let objects = objects(&mut cam, Duration::from_secs(20)).await;
        if objects.iter().all(|o| o["zone"] == "plaza") {
            break objects;
        }
        assert!(Instant::now() < deadline, "scene not applied: {objects:?}");
    };
    let feet_on_ground = placed.iter().filter(|o| o["ground"].is_array()).count();
    assert!(feet_on_ground > 0, "{placed:?}");

    // An exclude zone over everything: objects are still reported, never tracked.
    let scene = json!({"zones": [{"name": "all", "kind": "exclude", "polygon": whole}]});
    assert_eq!(put(&cam.service, 1, &scene).0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let objects = objects(&mut cam, Duration::from_secs(20)).await;
        if objects
            .iter()
            .all(|o| o.get("trackId").is_none() && o.get("zone").is_none())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "exclude zone not applied: {objects:?}"
        );
    }
    let cameras = cam.service.cameras();
    assert_eq!(cameras["data"][0]["state"], "online", "{cameras}");
}
