//! Black-box tests of `traffic-algo analyze VIDEO`: the camera pipeline over real street footage.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use base64::Engine;
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

#[test]
fn analyze_tracks_groups_and_crops_on_a_real_street() {
    // The elevated street camera, sampled every 0.6 s: cars keep their ids from frame to frame,
    // close ones form groups whose crops are real JPEGs of the stated size.
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        traffic_algo(dir.path())
            .args(["analyze", "--set", "stream.frame_interval=0.6", "--model"])
            .arg(model())
            .arg(media("traffic-street-h264.mp4")),
    );
    let lines = results(&out);
    assert!(lines.len() > 100, "{} results", lines.len());
    let (mut objects, mut tracked, mut groups, mut continued, mut pairs) = (0, 0, 0, 0, 0);
    let mut previous_ids = std::collections::BTreeSet::new();
    for v in &lines {
        let d = &v["data"];
        assert_eq!(d["trackingEnabled"], true);
        let stats = &d["trafficStats"];
        assert!(stats["vehiclesPerMinute"].is_u64() && stats["congestionLevel"].is_string());
        let ids: std::collections::BTreeSet<u64> = d["detectedObjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["trackId"].as_u64())
            .collect();
        objects += d["detectedObjects"].as_array().unwrap().len();
        tracked += ids.len();
        continued += ids.intersection(&previous_ids).count();
        pairs += previous_ids.len().min(ids.len());
        previous_ids = ids.clone();
        let images = d["groupImages"].as_array().unwrap();
        for (i, g) in d["trafficGroups"].as_array().unwrap().iter().enumerate() {
            groups += 1;
            assert_eq!(g["groupIndex"], i + 1, "1-based per frame");
            assert!(g["objectCount"].as_u64().unwrap() >= 2);
            assert!(matches!(
                g["riskLevel"].as_str().unwrap(),
                "none" | "low" | "medium" | "high"
            ));
            for id in g["memberTrackIds"].as_array().unwrap() {
                assert!(
                    ids.contains(&id.as_u64().unwrap()),
                    "member {id} is in the frame"
                );
            }
            let img = images
                .iter()
                .find(|img| img["groupId"] == g["groupId"])
                .unwrap();
            let jpeg = base64::engine::general_purpose::STANDARD
                .decode(img["imageBase64"].as_str().unwrap())
                .unwrap();
            let picture = imaging::decode_rgb(&jpeg).unwrap();
            assert_eq!(
                u64::from(picture.width),
                img["imageWidth"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(picture.height),
                img["imageHeight"].as_u64().unwrap()
            );
            assert!(picture.width.max(picture.height) <= 1280);
        }
        for a in d["dangerousDrivingResults"].as_array().unwrap() {
            assert_eq!(a["source"], "rules");
            assert!(a["startedAt"].as_str().unwrap().ends_with('Z'));
        }
    }
    eprintln!(
        "{objects} objects, {tracked} tracked, {continued}/{pairs} ids continued, {groups} groups"
    );
    // Detections under tracking.track_thresh (0.5) only continue tracks, and a new object is
    // named on its second sighting, so not every detection has an id.
    assert!(
        tracked * 2 >= objects,
        "{tracked} of {objects} objects tracked"
    );
    assert!(
        continued * 10 >= pairs * 8,
        "only {continued} of {pairs} ids continued"
    );
    assert!(groups > 0, "no traffic group on a street with 3-6 cars");

    // Tracking off: no ids, said so.
    let out = run_ok(
        traffic_algo(dir.path())
            .args(["analyze", "--set", "tracking.enabled=false", "--model"])
            .arg(model())
            .arg(media("road-cars-h264.mp4")),
    );
    for v in results(&out) {
        assert_eq!(v["data"]["trackingEnabled"], false);
        assert!(
            v["data"]["detectedObjects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o.get("trackId").is_none())
        );
    }
}

#[test]
fn a_fresh_high_alert_holds_the_next_sample_back() {
    // Cars coming down a two-lane road, on a scene calibrated at 100 px per metre (a plain
    // scale: the distances are not the road's, the rule only has to fire), with the
    // tailgating rule made hair-trigger (any follower within 60 s of its leader, from 0 km/h):
    // a high alert. After each fresh one the next sample comes `alert_pause_seconds` (5 s)
    // later, not 0.6 s.
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.yaml");
    std::fs::write(
        &scene,
        "calibration:\n  image: [[0, 0], [1280, 0], [1280, 720], [0, 720], [640, 360]]\n  \
         ground: [[0, 0], [12.8, 0], [12.8, 7.2], [0, 7.2], [6.4, 3.6]]\n",
    )
    .unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.arg("analyze").arg("--scene").arg(&scene);
    for set in [
        "stream.frame_interval=0.6",
        "stream.alert_pause_seconds=5",
        "rules.tailgating.headway_seconds=60",
        "rules.tailgating.min_speed_kmh=0",
    ] {
        cmd.args(["--set", set]);
    }
    let out = run_ok(
        cmd.arg("--model")
            .arg(model())
            .arg(media("road-cars-h264.mp4")),
    );
    let lines = results(&out);
    let mut paused = 0;
    for pair in lines.windows(2) {
        let (d, next) = (&pair[0]["data"], &pair[1]["data"]);
        let gap = next["streamTime"].as_f64().unwrap() - d["streamTime"].as_f64().unwrap();
        let fresh_high = d["dangerousDrivingResults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["riskLevel"] == "high" && a["isStale"] == false);
        if fresh_high {
            paused += 1;
            assert!(gap >= 4.95, "{gap:.2} s after a fresh high alert");
        } else {
            assert!(gap < 1.0, "{gap:.2} s without one");
        }
    }
    assert!(paused >= 1, "no fresh high alert in {} frames", lines.len());
}

/// Writes `traffic-street-h264.mp4`'s first `seconds` s to `out` with its picture frozen at the
/// keyframe at `at` s for `frozen` s (that keyframe stored again every 40 ms, as a stuck
/// encoder sends it), the rest following later by `frozen`.
fn frozen_clip(out: &std::path::Path, seconds: f64, at: f64, frozen: f64) {
    let file = std::fs::File::open(media("traffic-street-h264.mp4")).unwrap();
    let size = file.metadata().unwrap().len();
    let mut reader = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    let (id, track) = reader.tracks().iter().next().map(|(i, t)| (*i, t)).unwrap();
    let timescale = track.timescale();
    let config = mp4::AvcConfig {
        width: track.width(),
        height: track.height(),
        seq_param_set: track.sequence_parameter_set().unwrap().to_vec(),
        pic_param_set: track.picture_parameter_set().unwrap().to_vec(),
    };
    let count = track.sample_count();
    let mut writer = mp4::Mp4Writer::write_start(
        std::fs::File::create(out).unwrap(),
        &mp4::Mp4Config {
            major_brand: "isom".parse().unwrap(),
            minor_version: 512,
            compatible_brands: vec!["isom".parse().unwrap(), "avc1".parse().unwrap()],
            timescale: 1000,
        },
    )
    .unwrap();
    writer
        .add_track(&mp4::TrackConfig {
            track_type: mp4::TrackType::Video,
            timescale,
            language: "und".into(),
            media_conf: mp4::MediaConfig::AvcConfig(config),
        })
        .unwrap();
    let mut froze = false;
    for n in 1..=count {
        let s = reader.read_sample(id, n).unwrap().unwrap();
        let t = s.start_time as f64 / f64::from(timescale);
        if t > seconds {
            break;
        }
        let sample = |start_time| mp4::Mp4Sample {
            start_time,
            duration: s.duration,
            rendering_offset: 0,
            is_sync: s.is_sync,
            bytes: s.bytes.clone(),
        };
        writer.write_sample(1, &sample(s.start_time)).unwrap();
        if s.is_sync && !froze && t >= at {
            froze = true;
            let repeats = (frozen * f64::from(timescale) / f64::from(s.duration)) as u64;
            for k in 1..=repeats {
                writer
                    .write_sample(1, &sample(s.start_time + k * u64::from(s.duration)))
                    .unwrap();
            }
        }
    }
    writer.write_end().unwrap();
}

#[test]
fn analyze_reports_a_frozen_picture_and_raises_nothing_over_it() {
    // The street, frozen from 12 s to 18 s, sampled every 0.5 s on a scene calibrated at
    // 10 px per metre with a hard-braking rule that fires at 0.5 m/s^2 from any speed (a car
    // driving when the picture stops trips it, unless held).
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("frozen.mp4");
    frozen_clip(&clip, 20.0, 12.0, 6.0);
    let scene = dir.path().join("scene.yaml");
    std::fs::write(
        &scene,
        "calibration:\n  image: [[0, 0], [640, 0], [640, 360], [0, 360], [320, 180]]\n  \
         ground: [[0, 0], [64, 0], [64, 36], [0, 36], [32, 18]]\n",
    )
    .unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.arg("analyze").arg("--scene").arg(&scene);
    for set in [
        "stream.frame_interval=0.5",
        "rules.sudden_stop.deceleration=0.5",
        "rules.sudden_stop.min_speed_kmh=0",
    ] {
        cmd.args(["--set", set]);
    }
    let lines = results(&run_ok(cmd.arg("--model").arg(model()).arg(&clip)));
    // Each status with the stream time of the result it comes with (printed just before it).
    let mut heard = Vec::new();
    let mut pending = Vec::new();
    for v in &lines {
        let d = &v["data"];
        match v["type"].as_str().unwrap() {
            "camera_status" => {
                assert_eq!(
                    (d["state"].as_str(), d["status"].as_u64()),
                    (Some("online"), Some(1))
                );
                pending.push(d["message"].as_str().unwrap().to_string());
            }
            "detection_result" => {
                let t = d["streamTime"].as_f64().unwrap();
                heard.extend(pending.drain(..).map(|m| (t, m)));
                let fresh = d["dangerousDrivingResults"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["isStale"] == false)
                    .count();
                // The freeze's first sample (12.0 s) is still a live picture: the repeats
                // come after it, and they must raise nothing.
                assert!(
                    fresh == 0 || !(12.1..=19.6).contains(&t),
                    "{fresh} alerts at {t} s, in the freeze"
                );
            }
            other => panic!("{other}: {v}"),
        }
    }
    // 3 s into the freeze, and on the first frame after it.
    let said: Vec<&str> = heard.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        said,
        ["picture frozen", "picture moving again"],
        "{heard:?}"
    );
    assert!((15.0..=15.6).contains(&heard[0].0), "{heard:?}");
    assert!((18.0..=18.6).contains(&heard[1].0), "{heard:?}");
}
