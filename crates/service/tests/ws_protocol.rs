//! Black-box tests of the WebSocket protocol of `traffic-algo serve`, with real clients on
//! loopback: every malformed or refused message gets its error code and the socket stays
//! usable, the stream limit, the heartbeat that drops clients who stopped answering, and a
//! client too slow to read that loses messages (and at last its connection) without slowing
//! the others down.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::mjpeg::serve_mjpeg;
use support::ws::{Client, start, subscribe};
use support::{SECS, Service, http};
use tokio_tungstenite::tungstenite::Message;

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
    fast.send(subscribe(40)).await;
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
        if service.metric("ws_clients") == 1.0 {
            break;
        }
        assert!(gone.elapsed() < SECS(40), "the stuck client is still held");
        tokio::time::sleep(SECS(1)).await;
    }
    fast.recv_type("detection_result", SECS(5)).await;
    drop(stuck);
}
