//! Fault tests: one service with five cameras on loopback, four of them in trouble at once: a
//! "camera" that answers with garbage bytes, one whose stream stalls with the socket open (a TCP
//! proxy in front of a real RTSP server stops forwarding), one whose RTSP server is killed and
//! restarted three times, and frames saved to a disk that fills up; the LLM meanwhile hangs.
//! The healthy camera's results must keep their pace, and every fault must show in
//! `camera_status`, `/api/cameras` or the metrics.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use support::fake_llm::{FakeLlm, Reply};
use support::services::free_port;
use support::ws::{Client, start};
use support::{RtspServer, SECS, http, media, metric_samples};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// Everything the client heard, with when.
type Heard = Arc<Mutex<Vec<(Instant, Value)>>>;

/// A server that answers every connection with garbage and hangs up.
async fn garbage_camera() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut junk = vec![0u8; 4096];
            for b in &mut junk {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let _ = socket
                .write_all(b"RTSP/1.0 200 OK\r\nCSeq: x\r\n\x00\x01")
                .await;
            let _ = socket.write_all(&junk).await;
        }
    });
    port
}

/// A TCP proxy to `upstream` that stops forwarding (keeping every socket open) while `stalled`.
async fn stalling_proxy(upstream: u16, stalled: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Arc::clone(&stalled)));
            tokio::spawn(pump(sr, cw, Arc::clone(&stalled)));
        }
    });
    port
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits until the client heard a message matching `pred` after `since`.
async fn heard(
    heard: &Heard,
    since: Instant,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        if heard
            .lock()
            .unwrap()
            .iter()
            .any(|(t, v)| *t >= since && pred(v))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never heard {what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state_of(v: &Value, camera: i64, state: &str) -> bool {
    v["type"] == "camera_status" && v["data"]["cameraId"] == camera && v["data"]["state"] == state
}

/// A tmpfs of 256 KiB when this process may mount one (root, as in CI); else a save directory
/// whose path runs through a regular file, so every write fails too.
struct FullDisk {
    dir: std::path::PathBuf,
    mounted: bool,
    _tmp: tempfile::TempDir,
}

impl FullDisk {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("frames");
        std::fs::create_dir(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Self {
                dir,
                mounted,
                _tmp: tmp,
            };
        }
        let file = tmp.path().join("not-a-directory");
        std::fs::write(&file, b"x").unwrap();
        Self {
            dir: file.join("frames"),
            mounted,
            _tmp: tmp,
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_reported_and_the_healthy_camera_keeps_its_pace() {
    let clip = media("vtest-h264.mp4");
    let healthy = RtspServer::start(std::slice::from_ref(&clip));
    let stalled_upstream = RtspServer::start(std::slice::from_ref(&clip));
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(stalled_upstream.port, Arc::clone(&stalled)).await;
    let garbage = garbage_camera().await;
    let flaky_port = free_port();
    let mut flaky = Some(RtspServer::start_on(
        flaky_port,
        std::slice::from_ref(&clip),
    ));
    let disk = FullDisk::new();
    let llm = FakeLlm::start(vec![Reply::Text("{}".into(), SECS(600))]).await;
    let save_dir = disk.dir.to_str().unwrap().to_string();
    let service = llm.service(
        "sk-test",
        &[
            ("ALGO_LLM_TIMEOUT", "2"),
            ("ALGO_LLM_MAX_RETRY", "0"),
            ("ALGO_LLM_COOLDOWN_SECONDS", "1"),
            ("ALGO_SAVE_RAW_FRAMES", "true"),
            ("ALGO_SAVE_DIR", &save_dir),
        ],
    );

    let mut c = Client::connect(&service).await;
    c.send(start(1, &healthy.url(0))).await;
    c.send(start(2, &format!("rtsp://127.0.0.1:{garbage}/cam0")))
        .await;
    c.send(start(3, &format!("rtsp://127.0.0.1:{proxy}/cam0")))
        .await;
    c.send(start(4, &format!("rtsp://127.0.0.1:{flaky_port}/cam0")))
        .await;
    let log: Heard = Arc::default();
    let reader = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = c.ws.next().await {
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    log.lock().unwrap().push((Instant::now(), v));
                }
            }
        })
    };
    let t0 = Instant::now();
    for camera in [1, 3, 4] {
        heard(&log, t0, SECS(15), "cameras online", |v| {
            state_of(v, camera, "online")
        })
        .await;
    }

    // The garbage camera never comes online and says why, in one line (no dump of the junk).
    heard(&log, t0, SECS(15), "camera 2 reconnecting", |v| {
        let why = v["data"]["message"].as_str().unwrap_or("");
        state_of(v, 2, "reconnecting") && why.starts_with("connect failed") && !why.contains('\n')
    })
    .await;

    // The stall: the socket stays open, no frame comes; the watchdog notices within 10 s.
    let stall = Instant::now();
    stalled.store(true, Ordering::Relaxed);
    // Meanwhile the flaky camera's server is killed and restarted three times.
    for round in 0..3 {
        let killed = Instant::now();
        drop(flaky.take());
        heard(&log, killed, SECS(15), "camera 4 reconnecting", |v| {
            state_of(v, 4, "reconnecting")
        })
        .await;
        flaky = Some(RtspServer::start_on(
            flaky_port,
            std::slice::from_ref(&clip),
        ));
        heard(&log, killed, SECS(20), "camera 4 online again", |v| {
            state_of(v, 4, "online")
        })
        .await;
        eprintln!("flaky round {round}: back after {:?}", killed.elapsed());
    }
    heard(
        &log,
        stall,
        SECS(20),
        "camera 3 reconnecting after the stall",
        |v| {
            state_of(v, 3, "reconnecting")
                && v["data"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no frame")
        },
    )
    .await;
    eprintln!("stall noticed after {:?}", stall.elapsed());
    let resumed = Instant::now();
    stalled.store(false, Ordering::Relaxed);
    heard(
        &log,
        resumed,
        SECS(40),
        "camera 3 online after the stall",
        |v| state_of(v, 3, "online"),
    )
    .await;

    // The healthy camera never missed a beat.
    let times: Vec<Instant> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, v)| v["type"] == "detection_result" && v["data"]["cameraId"] == 1)
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    assert!(
        span > 9.0 && times.len() >= 5,
        "{} results over {span:.0} s",
        times.len()
    );
    assert!(
        gaps.iter().all(|g| *g < 2.7),
        "camera 1 results delayed: {gaps:?}"
    );

    // The faults in the numbers.
    let (_, _, text) = http(&service.addr, "GET", "/metrics", &[]);
    let m = metric_samples(&text);
    let value = |series: &str| m.get(series).copied().unwrap_or(0.0);
    assert!(
        value("stream_reconnects_total{camera_id=\"2\"}") >= 1.0,
        "{text}"
    );
    assert!(
        value("stream_reconnects_total{camera_id=\"3\"}") >= 1.0,
        "{text}"
    );
    assert!(
        value("stream_reconnects_total{camera_id=\"4\"}") >= 3.0,
        "{text}"
    );
    assert_eq!(
        value("stream_reconnects_total{camera_id=\"1\"}"),
        0.0,
        "{text}"
    );
    assert!(
        value("pipeline_errors_total{stage=\"save\"}") >= 1.0,
        "{text}"
    );
    assert!(
        value("llm_requests_total{status=\"timeout\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(value("camera_online{camera_id=\"1\"}"), 1.0);
    let cams = service.cameras();
    let cam1 = cams["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cameraId"] == 1)
        .unwrap();
    let why = cam1["lastError"].as_str().unwrap_or("");
    assert!(why.starts_with("cannot save frame"), "{cam1}");
    eprintln!(
        "disk: {} ({}); camera 1 last error: {why}",
        disk.dir.display(),
        if disk.mounted {
            "256 KiB tmpfs"
        } else {
            "path through a file"
        }
    );
    reader.abort();
}
