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
use support::{Service, http, looping, serve};

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
    let service = Service::start(&[
        ("ALGO_BACKEND_BASE_URL", base.as_str()),
        ("ALGO_BACKEND_REFRESH_SECONDS", "1"),
        ("ALGO_BACKEND_STATS_INTERVAL_SECONDS", "2"),
        ("ALGO_JWT_TOKEN", "secret-token"),
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

    // The backend drops camera 21 and adds 23.
    *backend.cameras.lock().unwrap() = json!([{"id": 23, "rtspUrl": url}]);
    wait_for("cameras follow the list", Duration::from_secs(10), || {
        camera_ids(&service) == [23]
    })
    .await;
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
