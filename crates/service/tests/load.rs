//! Load test: 200 WebSocket clients (from eight loopback addresses, 25 each) watching 4 cameras
//! on a real RTSP server for `LOAD_SECONDS` (120 by default). Every client must get every
//! result of every camera, in order; nothing may be dropped; the service's memory must stay
//! flat (RSS sampled every 5 s). It reports the spread of arrival times of one result across
//! the clients (p50/p99) and the service's frame-to-client latency (p99 from its histogram).

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::ws::connect_from;
use support::{RtspServer, Service, http, media, metric_samples};
use tokio_tungstenite::tungstenite::Message;

const CAMERAS: i64 = 4;

/// Clients (`LOAD_CLIENTS`, 200 by default).
fn client_count() -> usize {
    std::env::var("LOAD_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn load_seconds() -> u64 {
    std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

/// The text between `"key":` and the next `,` or `}` (cheap: results carry a 100-300 KB frame,
/// and 200 clients parsing them all would measure the test, not the service).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &text[at..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim_matches('"'))
}

/// What one client saw: per camera, each result's timestamp and when it arrived.
type Seen = HashMap<i64, Vec<(String, Instant)>>;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_get_every_result_in_order_and_memory_stays_flat() {
    // The two long clips (about 75 s each; the test server does not loop them, so each camera
    // pauses once for the 10 s watchdog and reconnects, which the clients see alike).
    let files = [
        media("vtest-h264.mp4"),
        media("traffic-street-h264.mp4"),
        media("vtest-h264.mp4"),
        media("traffic-street-h264.mp4"),
    ];
    let rtsp = RtspServer::start(&files);
    let service = Service::start(&[]);
    let pid = service.pid();

    // Client 0 starts the cameras; everyone subscribes to all four.
    let mut clients = Vec::new();
    for i in 0..client_count() {
        let from = [127, 0, 0, 1 + (i % 8) as u8];
        let mut ws = connect_from(&service, from).await.unwrap();
        for camera in 0..CAMERAS {
            let msg = if i == 0 {
                json!({"type": "start_stream", "data": {"cameraId": camera, "rtspUrl": rtsp.url(camera as usize)}})
            } else {
                json!({"type": "subscribe", "data": {"cameraId": camera}})
            };
            ws.send(Message::Text(msg.to_string().into()))
                .await
                .unwrap();
        }
        if i == 0 {
            // The cameras exist once their first camera_status comes back.
            let mut statuses = 0;
            while statuses < CAMERAS {
                let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
                let Ok(Some(Ok(Message::Text(t)))) = msg else {
                    panic!("no camera_status: {msg:?}");
                };
                statuses += i64::from(t.as_str().contains("\"type\":\"camera_status\""));
            }
        }
        clients.push(ws);
    }

    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, mut ws) in clients.into_iter().enumerate() {
        let recording = Arc::clone(&recording);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::new();
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(msg) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await
                else {
                    continue;
                };
                let Some(Ok(Message::Text(text))) = msg else {
                    if matches!(msg, Some(Ok(Message::Ping(_) | Message::Pong(_)))) {
                        continue;
                    }
                    panic!("client {i}: connection ended: {msg:?}");
                };
                // The service writes fields in their declared order: `type` first, then `data`
                // with `cameraId` and `timestamp` before the frame.
                let text = text.as_str();
                if text.starts_with("{\"type\":\"error\"") {
                    errors.push(text.to_string());
                }
                if !recording.load(Ordering::Relaxed)
                    || !text.starts_with("{\"type\":\"detection_result\"")
                {
                    continue;
                }
                let camera: i64 = field(text, "cameraId").unwrap().parse().unwrap();
                let at = text.find("\"timestamp\":").unwrap();
                let stamp = field(&text[at..], "timestamp").unwrap().to_string();
                seen.entry(camera)
                    .or_default()
                    .push((stamp, Instant::now()));
            }
            (seen, errors)
        }));
    }

    // Warm up until every camera streams, then record.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let warm_rss = rss_kib(pid);
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(load_seconds()) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss.push(rss_kib(pid));
    }
    recording.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }

    for (i, (_, errors)) in all.iter().enumerate() {
        assert!(errors.is_empty(), "client {i} got errors: {errors:?}");
    }
    // Per camera: the results every client saw, in order, the same for all.
    let mut spreads = Vec::new();
    for camera in 0..CAMERAS {
        let lists: Vec<&Vec<(String, Instant)>> = all
            .iter()
            .map(|(seen, _)| seen.get(&camera).expect("every client saw every camera"))
            .collect();
        let reference = lists.iter().max_by_key(|l| l.len()).unwrap();
        assert!(
            reference.len() as f64 >= (load_seconds() as f64 - 12.0) / 2.5,
            "camera {camera}: only {} results in {} s",
            reference.len(),
            load_seconds()
        );
        // A result at the very edges of the window may be missed by some clients.
        let inner = &reference[1..reference.len() - 1];
        for (i, list) in lists.iter().enumerate() {
            let stamps: Vec<&str> = list.iter().map(|(s, _)| s.as_str()).collect();
            assert!(
                stamps.windows(2).all(|w| w[0] < w[1]),
                "client {i}, camera {camera}: out of order"
            );
            let have: std::collections::HashSet<&str> = stamps.iter().copied().collect();
            let missing = inner
                .iter()
                .filter(|(s, _)| !have.contains(s.as_str()))
                .count();
            assert_eq!(
                missing, 0,
                "client {i}, camera {camera}: {missing} results missing"
            );
        }
        // When each result reached the clients, from the first to each of the others.
        for (stamp, _) in inner {
            let times: Vec<Instant> = lists
                .iter()
                .filter_map(|l| l.iter().find(|(s, _)| s == stamp).map(|(_, t)| *t))
                .collect();
            let first = *times.iter().min().unwrap();
            spreads.extend(times.iter().map(|t| (*t - first).as_secs_f64() * 1000.0));
        }
    }
    spreads.sort_by(f64::total_cmp);

    let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
    let m = metric_samples(&text);
    let dropped = m.get("ws_messages_dropped_total").copied().unwrap_or(-1.0);
    assert_eq!(dropped, 0.0, "messages dropped under load");
    let count = m["end_to_end_latency_seconds_count"];
    let p99 = text
        .lines()
        .filter_map(|l| l.strip_prefix("end_to_end_latency_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            Some((le.parse::<f64>().ok()?, n.parse::<f64>().ok()?))
        })
        .find(|(_, n)| *n >= 0.99 * count)
        .map(|(le, _)| le)
        .unwrap();

    // Memory: the last third of the run no higher than the first third (plus 20% and 16 MiB).
    let third = rss.len() / 3;
    let early = rss[..third].iter().sum::<u64>() / third as u64;
    let late = rss[rss.len() - third..].iter().sum::<u64>() / third as u64;
    eprintln!(
        "load: {} clients x {CAMERAS} cameras for {} s: {} results per client, \
         arrival spread across clients p50 {:.1} ms p99 {:.1} ms max {:.1} ms; \
         service frame-to-client p99 <= {p99} s over {count} sends; RSS warm {} MiB, \
         early {} MiB, late {} MiB, samples {:?}",
        client_count(),
        load_seconds(),
        all[0].0.values().map(Vec::len).sum::<usize>(),
        quantile(&spreads, 0.5),
        quantile(&spreads, 0.99),
        spreads.last().unwrap(),
        warm_rss / 1024,
        early / 1024,
        late / 1024,
        rss.iter().map(|k| k / 1024).collect::<Vec<_>>()
    );
    assert!(
        late <= early + early / 5 + 16 * 1024,
        "memory grew: {early} KiB -> {late} KiB"
    );
}
