//! Black-box tests of RTSP cameras in `traffic-algo serve`: the built binary with the real
//! model, a real RTSP server (GStreamer) on loopback streaming real street footage, and
//! WebSocket clients. A camera goes `connecting` then `online` and sends results at the
//! interval while decoding only sampled frames; it reconnects when its server comes back; a
//! new URL for the same id switches source without a stale result; RTSP over UDP on request;
//! RTSPS through a real TLS front, its certificate verified (or not, on request).

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::Instant;

use serde_json::json;
use support::live_camera::LiveCamera;
use support::tls::TlsFront;
use support::ws::{Client, start, stop};
use support::{RtspServer, SECS, Service, media};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_streams_detections_at_the_interval() {
    let mut cam = LiveCamera::start(7, Service::start(&[])).await;
    let (c, service) = (&mut cam.client, &cam.service);
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

    let cams = service.cameras();
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

    c.send(stop(7)).await;
    let v = c.recv_type("stream_stopped", SECS(5)).await;
    assert_eq!(
        v["data"],
        json!({"cameraId": 7, "reason": "Stopped by client"})
    );
    assert_eq!(service.cameras()["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_reconnects_after_the_server_restarts() {
    let mut cam = LiveCamera::start(3, Service::start(&[])).await;
    let port = cam.rtsp.port;
    let c = &mut cam.client;
    c.recv_state("online", SECS(15)).await;
    c.recv_type("detection_result", SECS(15)).await;

    drop(cam.rtsp);
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
    let cams = service.cameras();
    assert_eq!(cams["data"].as_array().unwrap().len(), 1);
    assert_eq!(cams["data"][0]["state"], "online", "{cams}");
    assert!(cams["data"][0]["url"].as_str().unwrap().ends_with("/cam0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_over_udp_on_request() {
    let mut cam = LiveCamera::start_with_query(8, "?transport=udp", Service::start(&[])).await;
    let c = &mut cam.client;
    c.recv_state("online", SECS(15)).await;
    let r = c.recv_type("detection_result", SECS(15)).await;
    assert_eq!(r["data"]["imageWidth"], 768);
}

/// RTSPS: the camera's certificate is checked against the system's roots (`SSL_CERT_FILE`
/// here: the test CA) and the stream analysed through TLS; an untrusted certificate is refused
/// with the reason, unless the URL says `tls_verify=0`; RTSPS over UDP is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsps_cameras_are_verified_and_watched_through_tls() {
    let rtsp = RtspServer::vtest();
    let front = TlsFront::start(rtsp.port).await;
    let url = format!("rtsps://127.0.0.1:{}/cam0", front.port);

    let service = Service::start(&[("SSL_CERT_FILE", front.ca.to_str().unwrap())]);
    let mut c = Client::connect(&service).await;
    c.send(start(1, &url)).await;
    c.recv_state("online", SECS(20)).await;
    let r = c.recv_type("detection_result", SECS(15)).await;
    assert_eq!(r["data"]["cameraId"], 1);
    assert_eq!(r["data"]["imageWidth"], 768);
    c.send(start(2, &format!("{url}?transport=udp"))).await;
    let e = c.recv_type("error", SECS(5)).await;
    assert!(
        e["data"]["message"].as_str().unwrap().contains("SRTP"),
        "{e}"
    );
    drop(c);
    drop(service);

    // The test CA is not among the system's roots.
    let service = Service::start(&[]);
    let mut c = Client::connect(&service).await;
    c.send(start(3, &url)).await;
    let v = c.recv_state("reconnecting", SECS(20)).await;
    let why = v["data"]["message"].as_str().unwrap();
    assert!(
        why.contains("TLS handshake") && why.contains("certificate"),
        "{v}"
    );
    c.send(start(4, &format!("{url}?tls_verify=0"))).await;
    loop {
        let m = c.recv_type("detection_result", SECS(20)).await;
        if m["data"]["cameraId"] == 4 {
            break;
        }
    }
}
