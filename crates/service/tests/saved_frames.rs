//! Black-box tests of saved frames: `traffic-algo serve` with a declared camera on a real RTSP
//! server (loopback) and `ALGO_SAVE_RAW_FRAMES` on. Analysed frames land on disk as real JPEGs
//! under the camera's directory for the day; at start-up frames older than the retention are
//! pruned with their emptied day directory, and files the store did not write stay.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::time::{Duration, Instant};

use support::{RtspServer, SECS, Service, http};

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
    let rtsp = RtspServer::vtest();
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
