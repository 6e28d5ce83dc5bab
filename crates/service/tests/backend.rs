//! The backend link against a local HTTP server standing in for the Spring Boot backend: cameras
//! come and go with its list, statistics arrive with the token, and a backend that is down never
//! stops the service.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::{Service, http, looping, repo_root, serve};

/// A received statistics post: the Authorization header and the body.
type Post = (Option<String>, Value);

#[derive(Clone, Default)]
struct Backend {
    cameras: Arc<Mutex<Value>>,
    posts: Arc<Mutex<Vec<Post>>>,
}

async fn cameras(State(b): State<Backend>) -> Json<Value> {
    Json(json!({"code": 200, "msg": "OK", "data": b.cameras.lock().unwrap().clone()}))
}

async fn stats(
    State(b): State<Backend>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    b.posts.lock().unwrap().push((auth, body));
    Json(json!({"code": 200}))
}

async fn serve_backend(b: Backend) -> String {
    let app = axum::Router::new()
        .route("/api/cameras", get(cameras))
        .route("/api/traffic/statistics", post(stats))
        .with_state(b);
    format!("http://{}/api", serve(app).await)
}

fn camera_ids(service: &Service) -> Vec<i64> {
    service.cameras()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cameraId"].as_i64().unwrap())
        .collect()
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_follow_the_backend_list_and_statistics_are_posted() {
    let backend = Backend::default();
    let url = looping("road-cars-h264.mp4");
    *backend.cameras.lock().unwrap() = json!([
        {"id": 21, "rtspUrl": url, "enabled": true},
        {"id": 22, "rtspUrl": url, "enabled": false}
    ]);
    let base = serve_backend(backend.clone()).await;
    // Camera 21 has the clip's scene (a count line, two calibrated lanes, 0.3 s cadence).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("tests/data/eval/scenes/road-cars.yaml"),
        dir.path().join("21.yaml"),
    )
    .unwrap();
    let db = dir.path().join("traffic.db");
    let service = Service::start(&[
        ("ALGO_BACKEND_BASE_URL", base.as_str()),
        ("ALGO_BACKEND_REFRESH_SECONDS", "1"),
        ("ALGO_BACKEND_STATS_INTERVAL_SECONDS", "2"),
        ("ALGO_JWT_TOKEN", "secret-token"),
        ("ALGO_SCENES_DIR", dir.path().to_str().unwrap()),
        ("ALGO_DATABASE_PATH", db.to_str().unwrap()),
    ]);
    wait_for("camera 21 started", Duration::from_secs(10), || {
        camera_ids(&service) == [21]
    })
    .await;

    wait_for("statistics posted", Duration::from_secs(15), || {
        backend
            .posts
            .lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b["framesAnalysed"].as_u64() > Some(0))
    })
    .await;
    {
        let posts = backend.posts.lock().unwrap();
        let (auth, body) = posts
            .iter()
            .find(|(_, b)| b["framesAnalysed"].as_u64() > Some(0))
            .unwrap();
        assert_eq!(auth.as_deref(), Some("Bearer secret-token"));
        assert_eq!(body["cameraId"], 21);
        assert!(body["avgVehicles"].as_f64().unwrap() > 0.0, "{body}");
    }

    // The posts carry the line counts and lane speeds of their window: vehicles cross the
    // line towards the camera, each crossing posted once (the sum over the posts is what the
    // service counted), and lanes report measured speeds.
    wait_for("crossings posted", Duration::from_secs(90), || {
        line_total(&backend.posts.lock().unwrap(), "in") >= 3
    })
    .await;
    // A lane pass is posted when its vehicle leaves the lane or its track ends (forgotten 30 s
    // after the last sighting).
    wait_for("lane speeds posted", Duration::from_secs(90), || {
        !lane_speeds(&backend.posts.lock().unwrap()).is_empty()
    })
    .await;
    {
        let posts = backend.posts.lock().unwrap();
        let body = &posts.last().unwrap().1;
        let names: Vec<&str> = body["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["lane-2", "lane-1"], "{body}");
        assert_eq!(body["lines"][0]["name"], "count-approach", "{body}");
        let by_class: u64 = posts
            .iter()
            .flat_map(|(_, b)| b["lines"].as_array().unwrap().clone())
            .flat_map(|l| {
                l["byClass"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|c| c["in"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .sum();
        assert_eq!(by_class, line_total(&posts, "in"), "classes add up");
        let speeds = lane_speeds(&posts);
        assert!(
            speeds.iter().all(|v| (30.0..200.0).contains(v)),
            "{speeds:?}"
        );
        assert_eq!(
            line_total(&posts, "out"),
            0,
            "nobody drives away from the camera"
        );
    }
    // Posted once: never more than the service counted (its metric), and what it counted
    // reaches the backend with the next posts.
    let posted = line_total(&backend.posts.lock().unwrap(), "in");
    let counted = service.counted_crossings(21, Some("in"));
    assert!(posted <= counted, "posted {posted}, counted {counted}");
    wait_for("every crossing posted", Duration::from_secs(10), || {
        line_total(&backend.posts.lock().unwrap(), "in") >= counted
    })
    .await;
    // The database holds them too (its writer catches up within 15 s).
    wait_for("crossings stored", Duration::from_secs(30), || {
        service.stored_crossings(21) >= counted
    })
    .await;

    // The backend drops camera 21 and adds 23.
    *backend.cameras.lock().unwrap() = json!([{"id": 23, "rtspUrl": url}]);
    wait_for("cameras follow the list", Duration::from_secs(10), || {
        camera_ids(&service) == [23]
    })
    .await;
}

/// The lanes' mean speeds posted, over every post.
fn lane_speeds(posts: &[Post]) -> Vec<f64> {
    posts
        .iter()
        .flat_map(|(_, b)| b["lanes"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["meanSpeedKmh"].as_f64())
        .collect()
}

/// Crossings posted for every line in `direction`, over every post.
fn line_total(posts: &[Post], direction: &str) -> u64 {
    posts
        .iter()
        .flat_map(|(_, b)| b["lines"].as_array().cloned().unwrap_or_default())
        .map(|l| l[direction].as_u64().unwrap())
        .sum()
}

#[test]
fn a_backend_that_is_down_does_not_stop_the_service() {
    let service = Service::start(&[
        ("ALGO_BACKEND_BASE_URL", "http://127.0.0.1:9/api"),
        ("ALGO_BACKEND_REFRESH_SECONDS", "1"),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(camera_ids(&service).is_empty());
}

/// `stream.max_concurrent_streams` caps the backend's cameras too: beyond it they are not
/// started (logged, tried again at every refresh); the declared camera keeps its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_cameras_beyond_the_cap_wait() {
    let backend = Backend::default();
    let url = looping("road-cars-h264.mp4");
    *backend.cameras.lock().unwrap() = json!([{"id": 21, "rtspUrl": url}]);
    let base = serve_backend(backend.clone()).await;
    let declared = format!("5={url}");
    let service = Service::start_with(
        &["--camera", &declared],
        &[
            ("ALGO_BACKEND_BASE_URL", base.as_str()),
            ("ALGO_BACKEND_REFRESH_SECONDS", "1"),
            ("ALGO_MAX_CONCURRENT_STREAMS", "1"),
        ],
    );
    // Three refreshes: camera 21 never starts beside camera 5.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(camera_ids(&service), [5]);
    }
}
