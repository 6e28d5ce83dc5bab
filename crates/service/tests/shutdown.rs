//! Black-box tests of how `traffic-algo serve` stops on SIGTERM: idle, it exits 0 at once; with
//! a camera on a real RTSP server (loopback), a watching client and a `check_camera` under way,
//! it still exits 0 within 10 s, the watcher hears `stream_stopped` ("Service shutting down")
//! before its connection ends, and the log shows no task left behind.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::live_camera::LiveCamera;
use support::ws::{Client, check};
use support::{SECS, Service};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn sigterm_stops_the_service_cleanly() {
    let mut service = Service::start(&[]);
    assert_eq!(service.terminate(SECS(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_cameras_and_clients_running_exits_cleanly() {
    let mut cam = LiveCamera::start(1, Service::start_logging(&[])).await;
    let (a, service) = (&mut cam.client, &mut cam.service);
    let mut b = Client::connect(service).await;
    a.recv_type("detection_result", SECS(15)).await;
    b.send(check(2, &cam.rtsp.url(0))).await;

    let code = tokio::task::block_in_place(|| service.terminate(SECS(10)));
    assert_eq!(code, Some(0));
    // The clients saw their connections end, the watcher of camera 1 told why first.
    let mut stopped = Vec::new();
    for c in [a, &mut b] {
        let mut heard = Vec::new();
        let ended = tokio::time::timeout(SECS(5), async {
            while let Some(Ok(msg)) = c.ws.next().await {
                match msg {
                    Message::Close(_) => break,
                    Message::Text(t) => heard.push(serde_json::from_str::<Value>(&t).unwrap()),
                    _ => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a client's connection did not end");
        stopped.push(
            heard
                .into_iter()
                .filter(|v| v["type"] == "stream_stopped")
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(stopped[0].len(), 1, "{:?}", stopped[0]);
    assert_eq!(
        stopped[0][0]["data"],
        json!({"cameraId": 1, "reason": "Service shutting down"})
    );
    assert!(stopped[1].is_empty(), "{:?}", stopped[1]);
    let log = service.log();
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("did not stop"),
        "a task was left behind: {log}"
    );
}
