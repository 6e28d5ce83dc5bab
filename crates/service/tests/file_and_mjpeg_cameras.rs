//! Black-box tests of cameras that are not RTSP, in `traffic-algo serve`: a video file (when
//! allowed) plays, ends with `Source ended` and gives its place up; an HTTP MJPEG camera (a
//! local server streaming two photos) passes `check_camera` and is analysed, decoding only
//! sampled pictures; an MJPEG URL that redirects is refused rather than followed.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use serde_json::json;
use support::mjpeg::serve_mjpeg;
use support::ws::{Client, check, start};
use support::{SECS, Service, media, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_camera_plays_and_reports_its_end() {
    let service = Service::start(&[
        ("ALGO_ALLOWED_SOURCE_SCHEMES", "rtsp,file"),
        ("ALGO_MAX_CONCURRENT_STREAMS", "1"),
    ]);
    let mut c = Client::connect(&service).await;
    let url = format!("file://{}", media("road-cars-h264.mp4").display());
    c.send(start(11, &url)).await;
    c.recv_state("online", SECS(5)).await;
    let r = c.recv_type("detection_result", SECS(10)).await;
    assert_eq!(
        (
            r["data"]["imageWidth"].as_u64(),
            r["data"]["imageHeight"].as_u64()
        ),
        (Some(1280), Some(720))
    );
    assert!(
        r["data"]["detectedObjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["class"] == "car"),
        "{}",
        r["data"]["detectedObjects"]
    );
    // 8.9 s clip without `loop`: the camera ends by itself.
    let v = c.recv_type("stream_stopped", SECS(15)).await;
    assert_eq!(v["data"], json!({"cameraId": 11, "reason": "Source ended"}));

    // The ended camera gives its place up (one camera allowed here) ...
    c.send(start(12, &url)).await;
    c.recv_state("online", SECS(5)).await;
    c.recv_type("detection_result", SECS(10)).await;
    c.send(start(13, &url)).await;
    assert_eq!(
        c.recv_type("error", SECS(5)).await["data"]["code"],
        "too_many_streams"
    );
    // ... and starting it again with the same URL plays it again.
    let v = c.recv_type("stream_stopped", SECS(15)).await;
    assert_eq!(v["data"]["cameraId"], 12);
    c.send(start(12, &url)).await;
    c.recv_state("online", SECS(5)).await;
    let r = c.recv_type("detection_result", SECS(10)).await;
    assert_eq!(r["data"]["cameraId"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mjpeg_camera_is_analysed() {
    let url = serve_mjpeg().await;
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(check(30, &url)).await;
    assert_eq!(
        c.recv_type("camera_status", SECS(6)).await["data"]["status"],
        1
    );

    c.send(start(30, &url)).await;
    c.recv_state("online", SECS(10)).await;
    let mut sizes = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let r = c.recv_type("detection_result", SECS(10)).await;
        let d = &r["data"];
        sizes.insert((
            d["imageWidth"].as_u64().unwrap(),
            d["imageHeight"].as_u64().unwrap(),
        ));
        assert!(
            d["detectedObjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["class"] == "person")
        );
    }
    assert!(
        sizes.iter().all(|s| *s == (810, 1080) || *s == (1280, 720)),
        "{sizes:?}"
    );
    let cams = service.cameras();
    let cam = &cams["data"][0];
    // 5 pictures a second arrive; only the sampled ones are decoded.
    let (decoded, received) = (
        cam["framesDecoded"].as_u64().unwrap(),
        cam["framesReceived"].as_u64().unwrap(),
    );
    assert!(decoded * 5 <= received, "decoded {decoded} of {received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_redirects_are_not_followed() {
    // A redirect could lead anywhere (the metadata service, an unlisted host): the policy
    // checked only the first address, so the service does not follow it, even to a camera
    // that works.
    let target = serve_mjpeg().await;
    let app = axum::Router::new().route(
        "/cam",
        axum::routing::get(move || {
            let target = target.clone();
            async move { (axum::http::StatusCode::FOUND, [("location", target)]) }
        }),
    );
    let url = format!("http://{}/cam", serve(app).await);
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(check(31, &url)).await;
    let v = c.recv_type("camera_status", SECS(6)).await;
    assert_eq!(v["data"]["status"], 0, "{v}");
    let message = v["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 302: redirects are not followed"),
        "{v}"
    );
}
