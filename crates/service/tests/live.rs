//! Black-box tests of the live service (`traffic-algo serve`) against real parts: the built
//! binary with the real model, a real RTSP server (GStreamer) on loopback streaming real street
//! footage, and WebSocket clients.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::ws::{Client, start};
use support::{RtspServer, Service, http, media};
use tokio_tungstenite::tungstenite::Message;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The `/api/cameras` answer.
fn cameras(service: &Service) -> Value {
    let (status, _, body) = http(&service.addr, "GET", "/api/cameras", &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn http_answers_in_the_envelope() {
    let service = Service::start(&[]);
    let (status, head, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 200);
    assert_eq!(v["msg"], "OK");
    assert_eq!(v["data"]["status"], "UP");
    assert_eq!(v["data"]["service"], "algo");
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["data"]["activeStreams"], 0);
    assert_eq!(v["data"]["llmEnabled"], false);
    assert_eq!(v["data"]["mode"], "standalone");
    assert!(v["data"]["uptimeSeconds"].is_u64());
    assert!(head.contains("content-type: application/json"), "{head}");

    let (status, _, body) = http(&service.addr, "GET", "/no/such/path", &[]);
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["code"].as_u64(), v["data"].is_null()), (Some(404), true));

    let (status, _, body) = http(&service.addr, "POST", "/api/health/health_check", &[]);
    assert_eq!(status, 405);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 405);

    // `/ws` asked for by plain HTTP: the envelope too, not the framework's text.
    let (status, _, body) = http(&service.addr, "GET", "/ws", &[]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(v["code"], status, "{body}");
    assert!(v["msg"].as_str().unwrap().contains("WebSocket"), "{body}");

    let (status, _, body) = http(&service.addr, "GET", "/api/cameras", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"],
        json!([])
    );

    let (_, head, _) = http(
        &service.addr,
        "GET",
        "/api/health/health_check",
        &[("Origin", "http://dashboard.example")],
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_message_gets_its_error_and_the_socket_stays_usable() {
    let service = Service::start(&[("ALGO_MAX_CONCURRENT_STREAMS", "1")]);
    let mut c = Client::connect(&service).await;
    c.send(json!({"type": "ping", "data": {}})).await;
    assert_eq!(c.recv(SECS(5)).await, json!({"type": "pong", "data": {}}));

    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "invalid_json"),
        (Message::Text("[1,2,3]".into()), "invalid_json"),
        (Message::Binary(vec![1u8, 2, 3].into()), "invalid_json"),
        (
            Message::Text(json!({"type": "fly"}).to_string().into()),
            "unknown_type",
        ),
        (
            Message::Text(json!({"data": {}}).to_string().into()),
            "missing_field",
        ),
        (
            Message::Text(
                json!({"type": "start_stream", "data": {}})
                    .to_string()
                    .into(),
            ),
            "missing_field",
        ),
        (
            Message::Text(
                json!({"type": "start_stream", "data": {"cameraId": 1}})
                    .to_string()
                    .into(),
            ),
            "missing_field",
        ),
        (
            Message::Text(
                json!({"type": "subscribe", "data": {"cameraId": "x"}})
                    .to_string()
                    .into(),
            ),
            "invalid_field",
        ),
        (
            Message::Text(start(1, "file:///etc/passwd").to_string().into()),
            "source_not_allowed",
        ),
        (
            Message::Text(start(1, "ftp://host/x").to_string().into()),
            "source_not_allowed",
        ),
        (
            Message::Text(
                json!({"type": "subscribe", "data": {"cameraId": 42}})
                    .to_string()
                    .into(),
            ),
            "unknown_camera",
        ),
        (
            Message::Text(
                json!({"type": "stop_stream", "data": {"cameraId": 42}})
                    .to_string()
                    .into(),
            ),
            "unknown_camera",
        ),
        (
            Message::Text(format!(r#"{{"type":"ping","data":"{}"}}"#, "x".repeat(1 << 20)).into()),
            "invalid_json",
        ),
    ];
    for (msg, code) in cases {
        let shown = format!("{msg:?}").chars().take(120).collect::<String>();
        c.send_raw(msg).await;
        let v = c.recv(SECS(5)).await;
        assert_eq!(v["type"], "error", "{shown}: {v}");
        assert_eq!(v["data"]["code"], code, "{shown}: {v}");
        assert!(v["data"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Limit of one camera: the first (unreachable) camera runs, the second is refused.
    c.send(start(1, "rtsp://127.0.0.1:9/none")).await;
    let v = c.recv_type("camera_status", SECS(5)).await;
    assert_eq!(v["data"]["state"], "connecting");
    c.send(start(2, "rtsp://127.0.0.1:9/other")).await;
    let v = c.recv_type("error", SECS(5)).await;
    assert_eq!(v["data"]["code"], "too_many_streams");
    assert_eq!(v["data"]["cameraId"], 2);

    // Still usable.
    c.send(json!({"type": "ping"})).await;
    c.recv_type("pong", SECS(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_streams_detections_at_the_interval() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(start(7, &rtsp.url(0))).await;
    let first = c.recv(SECS(5)).await;
    assert_eq!(first["type"], "camera_status", "{first}");
    assert_eq!(first["data"]["state"], "connecting");
    assert_eq!(first["data"]["status"], 0);
    let online = c.recv_state("online", SECS(15)).await;
    assert_eq!(online["data"]["status"], 1);

    let mut times = Vec::new();
    let (mut persons, mut tracked) = (0, 0);
    for _ in 0..5 {
        let r = c.recv_type("detection_result", SECS(15)).await;
        times.push(Instant::now());
        let d = &r["data"];
        assert_eq!(d["cameraId"], 7);
        assert_eq!(
            (d["imageWidth"].as_u64(), d["imageHeight"].as_u64()),
            (Some(768), Some(576))
        );
        assert!(
            d["frame"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,/9j/")
        );
        assert!(d["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(d["maxRiskLevel"], "none", "pedestrians only: no rule fires");
        assert_eq!(d["trackingEnabled"], true);
        tracked += d["detectedObjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["trackId"].is_u64())
            .count();
        persons += d["detectedObjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["class"] == "person")
            .count();
        for o in d["detectedObjects"].as_array().unwrap() {
            let b: Vec<f64> = serde_json::from_value(o["bbox"].clone()).unwrap();
            assert!(
                b[0] >= 0.0 && b[2] <= 768.0 && b[1] >= 0.0 && b[3] <= 576.0,
                "{o}"
            );
        }
    }
    assert!(
        persons >= 5,
        "only {persons} persons in 5 frames of a street scene"
    );
    assert!(tracked >= 3, "only {tracked} tracked persons");
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(
        (mean - 1.8).abs() <= 1.8 * 0.2,
        "mean interval {mean:.2} s ({gaps:?})"
    );

    let cams = cameras(&service);
    let cam = &cams["data"][0];
    assert_eq!(cam["cameraId"], 7);
    assert_eq!(cam["state"], "online");
    assert!(cam["framesAnalysed"].as_u64().unwrap() >= 5);
    let stats = &cam["trafficStats"];
    assert!(stats["personsTotal"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["personsPerMinute"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["congestionLevel"], "none");
    // Only sampled frames are decoded: far fewer than received (10 fps source).
    let (decoded, received) = (
        cam["framesDecoded"].as_u64().unwrap(),
        cam["framesReceived"].as_u64().unwrap(),
    );
    assert!(decoded * 5 <= received, "decoded {decoded} of {received}");

    c.send(json!({"type": "stop_stream", "data": {"cameraId": 7}}))
        .await;
    let v = c.recv_type("stream_stopped", SECS(5)).await;
    assert_eq!(
        v["data"],
        json!({"cameraId": 7, "reason": "Stopped by client"})
    );
    assert_eq!(cameras(&service)["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_reconnects_after_the_server_restarts() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let port = rtsp.port;
    let url = rtsp.url(0);
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(start(3, &url)).await;
    c.recv_state("online", SECS(15)).await;
    c.recv_type("detection_result", SECS(15)).await;

    drop(rtsp);
    let v = c.recv_state("reconnecting", SECS(15)).await;
    assert_eq!(v["data"]["status"], 0);
    assert!(!v["data"]["message"].as_str().unwrap().is_empty());

    let restarted = Instant::now();
    let _rtsp = RtspServer::start_on(port, &[media("vtest-h264.mp4")]);
    c.recv_state("online", SECS(12)).await;
    c.recv_type("detection_result", SECS(12)).await;
    assert!(
        restarted.elapsed() < SECS(15),
        "took {:?}",
        restarted.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_one_camera_until_the_last_leaves() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let service = Service::start(&[]);
    let mut a = Client::connect(&service).await;
    let mut b = Client::connect(&service).await;
    a.send(start(5, &rtsp.url(0))).await;
    a.recv_type("camera_status", SECS(5)).await;
    b.send(json!({"type": "subscribe", "data": {"cameraId": 5}}))
        .await;
    b.recv_type("camera_status", SECS(5)).await;
    a.recv_type("detection_result", SECS(20)).await;
    b.recv_type("detection_result", SECS(20)).await;

    let cams = cameras(&service);
    assert_eq!(
        cams["data"].as_array().unwrap().len(),
        1,
        "one pipeline: {cams}"
    );
    assert_eq!(cams["data"][0]["watchers"], 2);

    drop(a); // the first client goes away
    b.recv_type("detection_result", SECS(10)).await;
    b.recv_type("detection_result", SECS(10)).await;
    let cams = cameras(&service);
    assert_eq!(cams["data"][0]["watchers"], 1, "{cams}");

    // The last watcher leaves: the camera stops, and says so.
    b.send(json!({"type": "unsubscribe", "data": {"cameraId": 5}}))
        .await;
    let v = b.recv_type("stream_stopped", SECS(5)).await;
    assert_eq!(
        v["data"],
        json!({"cameraId": 5, "reason": "Stopped: no watchers left"})
    );
    assert_eq!(cameras(&service)["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_camera_reports_latency_or_reason_without_blocking() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    // A server that accepts the connection and never answers: its check takes the full 5 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("rtsp://{}/x", silent.local_addr().unwrap());
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    let started = Instant::now();
    c.send(json!({"type": "check_camera", "data": {"cameraId": 3, "rtspUrl": silent_url}}))
        .await;
    // The check runs in the background: a ping sent after it is answered at once.
    c.send(json!({"type": "ping"})).await;
    let v = c.recv(SECS(2)).await;
    assert_eq!(v["type"], "pong", "{v}");
    // By name: an unlisted host name is resolved and its addresses checked before connecting.
    let by_name = rtsp.url(0).replace("127.0.0.1", "localhost");
    c.send(json!({"type": "check_camera", "data": {"cameraId": 1, "rtspUrl": by_name}}))
        .await;
    c.send(
        json!({"type": "check_camera", "data": {"cameraId": 2, "rtspUrl": "rtsp://127.0.0.1:9/x"}}),
    )
    .await;

    let mut statuses = std::collections::BTreeMap::new();
    while statuses.len() < 3 {
        let v = c.recv_type("camera_status", SECS(8)).await;
        let id = v["data"]["cameraId"].as_i64().unwrap();
        statuses.insert(id, (v["data"].clone(), started.elapsed()));
    }
    let (good, good_at) = &statuses[&1];
    assert_eq!(good["status"], 1, "{good}");
    let latency = good["latencyMs"].as_u64().unwrap();
    assert!(latency > 0 && latency < 5000, "{latency}");
    let (refused, _) = &statuses[&2];
    assert_eq!(refused["status"], 0, "{refused}");
    assert!(!refused["message"].as_str().unwrap().is_empty());
    let (stalled, stalled_at) = &statuses[&3];
    assert_eq!(stalled["status"], 0, "{stalled}");
    // The stalled check neither held up the others nor outlived its 5 s limit by much.
    assert!(good_at < stalled_at, "{good_at:?} {stalled_at:?}");
    assert!(*stalled_at <= SECS(7), "{stalled_at:?}");
    drop(silent);
}

#[test]
fn sigterm_stops_the_service_cleanly() {
    let service = Service::start(&[]);
    let pid = service.pid();
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut proc = service;
    let code = loop {
        if let Some(code) = proc_try_wait(&mut proc) {
            break code;
        }
        assert!(
            started.elapsed() < SECS(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
}

fn proc_try_wait(service: &mut Service) -> Option<Option<i32>> {
    service.child_mut().try_wait().unwrap().map(|s| s.code())
}

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
async fn declared_cameras_run_headless_and_clients_subscribe() {
    let url = format!("file://{}?loop=1", media("road-cars-h264.mp4").display());
    let service = Service::start_with(&["--camera", &format!("9={url}")], &[]);
    let mut c = Client::connect(&service).await;
    c.send(json!({"type": "subscribe", "data": {"cameraId": 9}}))
        .await;
    c.recv_type("camera_status", SECS(5)).await;
    c.recv_type("detection_result", SECS(10)).await;

    let cams = cameras(&service);
    assert_eq!(cams["data"][0]["pinned"], true, "{cams}");
    assert_eq!(cams["data"][0]["watchers"], 1);

    // Clients may not repoint a declared camera; leaving does not stop it.
    c.send(start(9, "rtsp://127.0.0.1:9/other")).await;
    assert_eq!(
        c.recv_type("error", SECS(5)).await["data"]["code"],
        "invalid_field"
    );
    c.send(json!({"type": "stop_stream", "data": {"cameraId": 9}}))
        .await;
    c.recv_type("stream_stopped", SECS(5)).await;
    let cams = cameras(&service);
    assert_eq!(cams["data"][0]["cameraId"], 9, "{cams}");
    assert_eq!(cams["data"][0]["watchers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_dropped_after_three_heartbeats() {
    let service = Service::start(&[("ALGO_WS_HEARTBEAT_SECONDS", "1")]);
    let mut silent = Client::connect(&service).await;
    let mut alive = Client::connect(&service).await;
    // `alive` keeps reading, so its client library answers the server's pings with pongs.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < SECS(5) {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), alive.ws.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "{pings} pings in 5 s at a 1 s heartbeat");
    alive.send(json!({"type": "ping"})).await;
    alive.recv_type("pong", SECS(2)).await;

    // `silent` read nothing for 5 s, so it never answered: the server has closed it.
    let closed = tokio::time::timeout(SECS(3), async {
        loop {
            match silent.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "silent client still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_with_a_new_url_restarts_the_camera() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4"), media("traffic-street-h264.mp4")]);
    // A short interval keeps the analysis busy, so restarts land while a frame is analysed.
    let service = Service::start(&[("ALGO_FRAME_INTERVAL", "0.3")]);
    let mut c = Client::connect(&service).await;
    c.send(start(6, &rtsp.url(0))).await;
    let r = c.recv_type("detection_result", SECS(15)).await;
    assert_eq!(r["data"]["imageWidth"], 768);

    // vtest is 768 wide, traffic-street 640: switch back and forth.
    for round in 1..=4 {
        let (url, new_width, old_width) = match round % 2 {
            1 => (rtsp.url(1), 640, 768),
            _ => (rtsp.url(0), 768, 640),
        };
        c.send(start(6, &url)).await;
        // Results now come from the new source, and no stale `offline` arrives. A result of
        // the old source may still arrive if it was judged before the restart, never one
        // judged after the restart's answer reached us.
        let mut answered = None;
        let mut old_judged = Vec::new();
        let deadline = Instant::now() + SECS(15);
        loop {
            let v = c
                .recv(deadline.saturating_duration_since(Instant::now()))
                .await;
            assert_ne!(v["data"]["state"], "offline", "{v}");
            if v["type"] == "camera_status" && v["data"]["state"] == "connecting" {
                answered.get_or_insert_with(chrono::Utc::now);
            }
            if v["type"] != "detection_result" {
                continue;
            }
            if v["data"]["imageWidth"] == new_width {
                break;
            }
            assert_eq!(v["data"]["imageWidth"], old_width, "{v}");
            let judged = v["data"]["timestamp"].as_str().unwrap();
            old_judged.push(chrono::DateTime::parse_from_rfc3339(judged).unwrap());
        }
        let answered = answered.expect("the restart is answered with `connecting`");
        for judged in old_judged {
            assert!(
                judged < answered,
                "round {round}: old source judged after the restart"
            );
        }
    }
    let cams = cameras(&service);
    assert_eq!(cams["data"].as_array().unwrap().len(), 1);
    assert_eq!(cams["data"][0]["state"], "online", "{cams}");
    assert!(cams["data"][0]["url"].as_str().unwrap().ends_with("/cam0"));
}

/// Serves an endless MJPEG stream of the two photos, 5 pictures a second; returns its URL.
async fn serve_mjpeg() -> String {
    use axum::body::{Body, Bytes};
    let photos = [
        std::fs::read(media("bus.jpg")).unwrap(),
        std::fs::read(media("zidane.jpg")).unwrap(),
    ];
    let app = axum::Router::new().route(
        "/video.mjpg",
        axum::routing::get(move || {
            let photos = photos.clone();
            async move {
                let parts = futures_util::stream::unfold(0usize, move |i| {
                    let photo = photos[i % 2].clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let mut part = format!(
                            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            photo.len()
                        )
                        .into_bytes();
                        part.extend_from_slice(&photo);
                        part.extend_from_slice(b"\r\n");
                        Some((Ok::<_, std::io::Error>(Bytes::from(part)), i + 1))
                    }
                });
                (
                    [("content-type", "multipart/x-mixed-replace; boundary=frame")],
                    Body::from_stream(parts),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/video.mjpg")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mjpeg_camera_is_analysed() {
    let url = serve_mjpeg().await;
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(json!({"type": "check_camera", "data": {"cameraId": 30, "rtspUrl": url}}))
        .await;
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
    let cams = cameras(&service);
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cam", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(json!({"type": "check_camera", "data": {"cameraId": 31, "rtspUrl": url}}))
        .await;
    let v = c.recv_type("camera_status", SECS(6)).await;
    assert_eq!(v["data"]["status"], 0, "{v}");
    let message = v["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 302: redirects are not followed"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_over_udp_on_request() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(start(8, &format!("{}?transport=udp", rtsp.url(0))))
        .await;
    c.recv_state("online", SECS(15)).await;
    let r = c.recv_type("detection_result", SECS(15)).await;
    assert_eq!(r["data"]["imageWidth"], 768);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_loses_messages_without_slowing_others() {
    let url = serve_mjpeg().await;
    // Five results a second of ~150-250 KB each, so a client that never reads fills its socket
    // buffers and then its queue within seconds. (No alert pause: the two alternating photos
    // make objects jump, which the rules may call dangerous.)
    let service = Service::start(&[
        ("ALGO_FRAME_INTERVAL", "0.2"),
        ("ALGO_ALERT_PAUSE_SECONDS", "0"),
    ]);
    let mut stuck = Client::connect(&service).await;
    stuck.send(start(40, &url)).await;
    // The camera exists before the other client subscribes (then this one stops reading).
    stuck.recv_state("connecting", SECS(5)).await;
    let mut fast = Client::connect(&service).await;
    fast.send(json!({"type": "subscribe", "data": {"cameraId": 40}}))
        .await;
    fast.recv_type("detection_result", SECS(10)).await;

    let started = Instant::now();
    let mut received = 0;
    let dropped = loop {
        fast.recv_type("detection_result", SECS(5)).await;
        received += 1;
        let (_, _, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
        let health: Value = serde_json::from_str(&body).unwrap();
        let dropped = health["data"]["wsMessagesDropped"].as_u64().unwrap();
        if dropped > 0 {
            break dropped;
        }
        assert!(
            started.elapsed() < SECS(60),
            "nothing dropped for the stuck client in 60 s"
        );
    };
    // The reading client kept getting results the whole time (about 4-5 per second).
    let rate = f64::from(received) / started.elapsed().as_secs_f64();
    assert!(
        rate > 2.0,
        "fast client got {rate:.1} results/s while the other was stuck"
    );
    assert!(dropped >= 1);
    // The stuck client's socket takes no more data: the service gives up on it (each message
    // has 10 s to reach the socket) and frees its place, while the other client stays.
    let gone = Instant::now();
    loop {
        let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
        if support::metric_samples(&text).get("ws_clients") == Some(&1.0) {
            break;
        }
        assert!(gone.elapsed() < SECS(40), "the stuck client is still held");
        tokio::time::sleep(SECS(1)).await;
    }
    fast.recv_type("detection_result", SECS(5)).await;
    drop(stuck);
}

/// The id of the request's group 1, from the summary text ("Group 1 (id N): ...").
fn first_group_id(body: &Value) -> u64 {
    let text = body["messages"][1]["content"][0]["text"].as_str().unwrap();
    let start = text.find("Group 1 (id ").unwrap() + "Group 1 (id ".len();
    text[start..].split(')').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_answers_attach_to_their_group_and_a_slow_llm_never_delays_results() {
    use support::fake_llm::{FakeLlm, Reply};
    let answer = r#"{"hasDangerousDriving": true, "maxRiskLevel": "high", "results": [{"groupIndex": 1, "description": "people step into the road", "riskLevel": "high", "confidence": 0.9, "riskTypes": ["pedestrian_risk"], "dangerObjectCount": 2, "triggerObjectIds": [1]}]}"#;
    // The first call takes 10 s; later ones answer at once.
    let llm = FakeLlm::start(vec![
        Reply::Text(answer.into(), SECS(10)),
        Reply::text(answer),
    ])
    .await;
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let base = llm.base_url();
    let service = Service::start(&[
        ("ALGO_LLM_API_KEY", "sk-test"),
        ("ALGO_LLM_BASE_URL", &base),
        ("ALGO_LLM_COOLDOWN_SECONDS", "1"),
        ("ALGO_ALERT_PAUSE_SECONDS", "0"),
    ]);
    let mut c = Client::connect(&service).await;
    c.send(start(50, &rtsp.url(0))).await;
    c.recv_state("online", SECS(15)).await;

    // While the first call hangs, results keep their pace and no second call goes out.
    let mut times = Vec::new();
    for _ in 0..4 {
        let r = c.recv_type("detection_result", SECS(10)).await;
        times.push(Instant::now());
        assert!(r["data"]["llmModel"].is_null());
    }
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g < 2.6),
        "results delayed while the LLM is slow: {gaps:?}"
    );
    let calls = llm.calls();
    assert_eq!(calls.len(), 1, "one request in flight per camera");
    let asked = first_group_id(&calls[0].body);
    assert_eq!(calls[0].authorization, "Bearer sk-test");

    // The answer shows up on the group the request called group 1.
    let deadline = Instant::now() + SECS(30);
    let found = loop {
        assert!(Instant::now() < deadline, "no LLM alert within 30 s");
        let r = c.recv_type("detection_result", SECS(15)).await;
        let d = r["data"].clone();
        if let Some(a) = d["dangerousDrivingResults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["source"] == "llm")
        {
            break (d.clone(), a.clone());
        }
    };
    let (d, a) = found;
    assert_eq!(a["groupId"], asked);
    assert_eq!(
        (a["riskLevel"].clone(), a["type"].clone()),
        (json!("high"), json!("pedestrian_risk"))
    );
    assert_eq!(d["llmModel"], "qwen-vl-plus");
    assert!(d["llmLatency"].as_f64().unwrap() >= 9.0);
    assert!(
        d["llmRawText"]
            .as_str()
            .unwrap()
            .contains("people step into the road")
    );
    assert_eq!(d["maxRiskLevel"], "high");
    assert_eq!(d["hasDangerousDriving"], true);
    let cams = cameras(&service);
    assert!(cams["data"][0]["llm"]["answers"].as_u64().unwrap() >= 1);

    // The metrics say the same.
    let accept = [(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )];
    let (status, head, text) = http(&service.addr, "GET", "/metrics", &accept);
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(text.ends_with("# EOF\n"));
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{line}` in\n{text}"))
    };
    assert!(value("llm_requests_total{status=\"success\"}") >= 1.0);
    assert_eq!(value("llm_requests_total{status=\"parse_error\"}"), 0.0);
    assert!(value("llm_latency_seconds_count") >= 1.0);
    assert!(value("llm_latency_seconds_bucket{le=\"10.0\"}") < value("llm_latency_seconds_count"));
    assert!(value("llm_token_usage_total") >= 1050.0);
    assert_eq!(value("api_key_pool_size"), 1.0);
    assert_eq!(value("api_key_status{key_id=\"default\"}"), 1.0);
    assert!(value("api_key_total_calls{key_id=\"default\"}") >= 1.0);
    assert_eq!(value("api_key_success_rate{key_id=\"default\"}"), 1.0);
    assert!(!text.contains("sk-test"), "no secret in the metrics");
}

#[tokio::test]
async fn failed_llm_calls_start_the_camera_cooldown_too_and_results_keep_flowing() {
    use support::fake_llm::{FakeLlm, Reply};
    // Refused for content, then an answer that is not JSON: neither is the key's fault, both
    // must wait out the camera's cooldown before the next request.
    let llm = FakeLlm::start(vec![
        Reply::Status(
            400,
            r#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#.into(),
        ),
        Reply::text("I am not sure what to say."),
        Reply::Status(
            400,
            r#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#.into(),
        ),
    ])
    .await;
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let base = llm.base_url();
    let service = Service::start(&[
        ("ALGO_LLM_API_KEY", "sk-test"),
        ("ALGO_LLM_BASE_URL", &base),
        ("ALGO_LLM_COOLDOWN_SECONDS", "4"),
    ]);
    let mut c = Client::connect(&service).await;
    c.send(start(51, &rtsp.url(0))).await;
    c.recv_state("online", SECS(15)).await;
    for _ in 0..8 {
        c.recv_type("detection_result", SECS(5)).await;
    }
    let calls = llm.calls();
    assert!(calls.len() >= 2, "{} calls in 8 results", calls.len());
    let gaps: Vec<f64> = calls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 3.9),
        "calls closer than the cooldown: {gaps:?}"
    );
    let cams = cameras(&service);
    let counters = &cams["data"][0]["llm"];
    assert!(counters["failures"].as_u64().unwrap() >= 1, "{counters}");
    assert!(counters["parseErrors"].as_u64().unwrap() >= 1, "{counters}");
    assert_eq!(counters["answers"], 0);
    let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
    assert!(
        text.contains("llm_requests_total{status=\"parse_error\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("api_key_status{key_id=\"default\"} 1"),
        "content errors leave the key active: {text}"
    );
}

/// The `.jpg` files under `dir`, at any depth.
fn jpegs_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "jpg") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn analysed_frames_are_saved_and_old_ones_pruned() {
    let rtsp = RtspServer::start(&[media("vtest-h264.mp4")]);
    let dir = tempfile::tempdir().unwrap();
    // A frame from three days ago, and a file the store did not write.
    let old_day = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let old = dir.path().join("1").join(&old_day).join("120000.000.jpg");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"\xff\xd8old").unwrap();
    let foreign = dir.path().join("README.jpg");
    std::fs::write(&foreign, b"not ours").unwrap();
    let declared = format!("1={}", rtsp.url(0));
    let save_dir = dir.path().to_str().unwrap().to_string();
    let service = Service::start_with(
        &["--camera", &declared],
        &[
            ("ALGO_SAVE_RAW_FRAMES", "true"),
            ("ALGO_SAVE_DIR", &save_dir),
            ("ALGO_SAVE_RETENTION_DAYS", "1"),
        ],
    );
    let deadline = Instant::now() + SECS(30);
    let saved = loop {
        let saved: Vec<_> = jpegs_under(dir.path())
            .into_iter()
            .filter(|p| *p != old && *p != foreign)
            .collect();
        if saved.len() >= 2 && !old.exists() {
            break saved;
        }
        assert!(
            Instant::now() < deadline,
            "old frame left: {}, saved: {saved:?}",
            old.exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Today's frames are real JPEGs under camera 1's directory for today (UTC).
    for path in &saved {
        assert!(path.starts_with(dir.path().join("1")), "{path:?}");
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\xff\xd8") && bytes.len() > 10_000,
            "{path:?}"
        );
    }
    assert!(foreign.exists());
    assert!(
        !old.parent().unwrap().exists(),
        "the emptied day directory stays"
    );
    let (_, _, metrics) = http(&service.addr, "GET", "/metrics", &[]);
    let samples = support::metric_samples(&metrics);
    assert_eq!(samples["saved_frames_deleted_total"], 1.0);
    assert!(samples.contains_key("saved_frames_bytes"));
}
