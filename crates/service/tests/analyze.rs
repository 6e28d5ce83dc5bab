//! Black-box tests of `traffic-algo analyze VIDEO`: the camera pipeline over real street footage.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use serde_json::Value;
use support::{media, model, run, run_ok, traffic_algo};

fn results(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn analyze_samples_the_video_at_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        traffic_algo(dir.path())
            .args(["analyze", "--camera-id", "4", "--model"])
            .arg(model())
            .arg(media("road-cars-h264.mp4")),
    );
    let lines = results(&out);
    // 8.9 s at one sample per ~2 s keyframe (interval 1.8 s): 5 results.
    assert!((4..=6).contains(&lines.len()), "{} results", lines.len());
    let mut last = -1.0;
    for v in &lines {
        assert_eq!(v["type"], "detection_result");
        let d = &v["data"];
        assert_eq!(d["cameraId"], 4);
        assert!(d["frame"].is_null());
        let t = d["streamTime"].as_f64().unwrap();
        assert!(t > last, "stream time goes forward");
        if last >= 0.0 {
            assert!((t - last - 1.8).abs() <= 0.36, "gap {} s", t - last);
        }
        last = t;
    }
    let cars: usize = lines
        .iter()
        .map(|v| {
            v["data"]["detectedObjects"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["class"] == "car")
                .count()
        })
        .sum();
    assert!(cars >= lines.len(), "only {cars} cars on a road");
}

#[test]
fn analyze_inlines_frames_on_request_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        traffic_algo(dir.path())
            .args([
                "analyze",
                "--frames",
                "--set",
                "stream.frame_interval=4",
                "--model",
            ])
            .arg(model())
            .arg(media("road-cars-h264.mp4")),
    );
    let lines = results(&out);
    assert!((2..=3).contains(&lines.len()), "{} results", lines.len());
    assert!(
        lines[0]["data"]["frame"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,/9j/")
    );

    for bad in [
        media("vtest.avi"),
        dir.path().join("missing.mp4"),
        media("bus.jpg"),
    ] {
        let out = run(traffic_algo(dir.path())
            .args(["analyze", "--model"])
            .arg(model())
            .arg(&bad));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
