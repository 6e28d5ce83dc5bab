//! Black-box tests of `check_camera` in `traffic-algo serve`: against a real RTSP server on
//! loopback (by host name), a closed port and a server that accepts and never answers, each
//! check reports its latency or its reason, runs in the background without holding up the
//! client's other messages or checks, and gives up after its 5 s limit.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Instant;

use serde_json::json;
use support::ws::{Client, check};
use support::{RtspServer, SECS, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_camera_reports_latency_or_reason_without_blocking() {
    let rtsp = RtspServer::vtest();
    // A server that accepts the connection and never answers: its check takes the full 5 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("rtsp://{}/x", silent.local_addr().unwrap());
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    let started = Instant::now();
    c.send(check(3, &silent_url)).await;
    // The check runs in the background: a ping sent after it is answered at once.
    c.send(json!({"type": "ping"})).await;
    let v = c.recv(SECS(2)).await;
    assert_eq!(v["type"], "pong", "{v}");
    // By name: an unlisted host name is resolved and its addresses checked before connecting.
    let by_name = rtsp.url(0).replace("127.0.0.1", "localhost");
    c.send(check(1, &by_name)).await;
    c.send(check(2, "rtsp://127.0.0.1:9/x")).await;

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
