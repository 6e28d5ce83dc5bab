//! Black-box tests of who keeps a camera running in `traffic-algo serve`: clients watching the
//! same camera share one pipeline, which stops (and says so) when the last watcher leaves; a
//! camera declared on the command line runs with no watcher at all, cannot be repointed by a
//! client, and outlives the clients that subscribe to it.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use serde_json::json;
use support::live_camera::LiveCamera;
use support::ws::{Client, start, stop, subscribe};
use support::{SECS, Service, looping};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_one_camera_until_the_last_leaves() {
    let cam = LiveCamera::start(5, Service::start(&[])).await;
    let service = &cam.service;
    let mut a = cam.client;
    let mut b = Client::connect(service).await;
    a.recv_type("camera_status", SECS(5)).await;
    b.send(subscribe(5)).await;
    b.recv_type("camera_status", SECS(5)).await;
    a.recv_type("detection_result", SECS(20)).await;
    b.recv_type("detection_result", SECS(20)).await;

    let cams = service.cameras();
    assert_eq!(
        cams["data"].as_array().unwrap().len(),
        1,
        "one pipeline: {cams}"
    );
    assert_eq!(cams["data"][0]["watchers"], 2);

    drop(a); // the first client goes away
    b.recv_type("detection_result", SECS(10)).await;
    b.recv_type("detection_result", SECS(10)).await;
    let cams = service.cameras();
    assert_eq!(cams["data"][0]["watchers"], 1, "{cams}");

    // The last watcher leaves: the camera stops, and says so.
    b.send(json!({"type": "unsubscribe", "data": {"cameraId": 5}}))
        .await;
    let v = b.recv_type("stream_stopped", SECS(5)).await;
    assert_eq!(
        v["data"],
        json!({"cameraId": 5, "reason": "Stopped: no watchers left"})
    );
    assert_eq!(service.cameras()["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_cameras_run_headless_and_clients_subscribe() {
    let url = looping("road-cars-h264.mp4");
    let service = Service::start_with(&["--camera", &format!("9={url}")], &[]);
    let mut c = Client::connect(&service).await;
    c.send(subscribe(9)).await;
    c.recv_type("camera_status", SECS(5)).await;
    c.recv_type("detection_result", SECS(10)).await;

    let cams = service.cameras();
    assert_eq!(cams["data"][0]["pinned"], true, "{cams}");
    assert_eq!(cams["data"][0]["watchers"], 1);

    // Clients may not repoint a declared camera; leaving does not stop it.
    c.send(start(9, "rtsp://127.0.0.1:9/other")).await;
    assert_eq!(
        c.recv_type("error", SECS(5)).await["data"]["code"],
        "invalid_field"
    );
    c.send(stop(9)).await;
    c.recv_type("stream_stopped", SECS(5)).await;
    let cams = service.cameras();
    assert_eq!(cams["data"][0]["cameraId"], 9, "{cams}");
    assert_eq!(cams["data"][0]["watchers"], 0);
}
