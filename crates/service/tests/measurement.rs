//! Black-box tests of traffic measurement (SPEC section 9) through the binary, on real footage:
//! a camera with a scene that has a count line counts the vehicles crossing it into
//! `trafficStats.lines`, `traffic_line_crossings_total` and the embedded SQLite database; the
//! counts API answers in the envelope and as CSV, refuses bad parameters, and the counts are
//! still there after a restart.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Service, http, media, model, repo_root, run_ok, traffic_algo};

/// The road-cars clip's scene (calibration, lanes, the `count-approach` line across both
/// lanes, 0.3 s cadence), as camera 3's scene file.
fn scenes_dir(root: &Path) -> std::path::PathBuf {
    let scenes = root.join("scenes");
    std::fs::create_dir_all(&scenes).unwrap();
    std::fs::copy(
        repo_root().join("tests/data/eval/scenes/road-cars.yaml"),
        scenes.join("3.yaml"),
    )
    .unwrap();
    scenes
}

fn envelope(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Crossings of `count-approach` in the database, all bins, directions and classes.
fn stored_crossings(service: &Service) -> u64 {
    let (status, headers, body) = http(&service.addr, "GET", "/api/cameras/3/counts?bin=3600", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains("x-bin-seconds: 3600\r\n"), "{headers}");
    let v = envelope(&body);
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|row| assert_eq!(row["line"], "count-approach", "{row}"))
        .map(|row| row["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn crossings_are_counted_live_kept_in_the_database_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = scenes_dir(dir.path());
    let cameras = dir.path().join("cameras.yaml");
    let url = format!(
        "file://{}?loop=1",
        media("road-cars-h264.mp4")
            .canonicalize()
            .unwrap()
            .display()
    );
    std::fs::write(&cameras, format!("cameras:\n  - id: 3\n    url: {url}\n")).unwrap();
    let db = dir.path().join("traffic.db");
    let snapshots = dir.path().join("snapshots");
    let env = [
        ("ALGO_SCENES_DIR", scenes.to_str().unwrap()),
        ("ALGO_CAMERAS_FILE", cameras.to_str().unwrap()),
        ("ALGO_ALLOWED_SOURCE_SCHEMES", "file"),
        ("ALGO_DATABASE_PATH", db.to_str().unwrap()),
        ("ALGO_MEASUREMENT_BIN_SECONDS", "60"),
        ("ALGO_SNAPSHOT_DIR", snapshots.to_str().unwrap()),
    ];
    let mut service = Service::start(&env);

    // The live figures: the line shows in every result of the camera; vehicles cross it.
    let deadline = Instant::now() + Duration::from_secs(90);
    let live = loop {
        let cams = service.cameras();
        let crossed = service.metric(
            "traffic_line_crossings_total{camera=\"3\",line=\"count-approach\",direction=\"in\",class=\"car\"}",
        );
        if crossed >= 3.0 {
            break crossed;
        }
        assert!(Instant::now() < deadline, "no crossings counted: {cams}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // Vehicles come towards the camera: nothing crosses the other way.
    let against = service.metric(
        "traffic_line_crossings_total{camera=\"3\",line=\"count-approach\",direction=\"out\",class=\"car\"}",
    );
    assert_eq!(against, 0.0);

    // The database catches up within its flush interval (10 s) plus the sink's (5 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    while stored_crossings(&service) < live as u64 {
        assert!(Instant::now() < deadline, "crossings not written");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, _, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    let health = envelope(&body);
    assert_eq!(
        (status, health["data"]["status"].as_str()),
        (200, Some("UP")),
        "{body}"
    );
    assert_eq!(health["data"]["database"]["backend"], "sqlite", "{body}");
    assert_eq!(health["data"]["database"]["up"], true, "{body}");

    // CSV: a header and one row per bin x line x direction x class.
    let (status, headers, csv) = http(
        &service.addr,
        "GET",
        "/api/cameras/3/counts?format=csv",
        &[],
    );
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/csv"), "{headers}");
    // Without `bin`: the service's own bins, and the answer says how long they are.
    assert!(headers.contains("x-bin-seconds: 60\r\n"), "{headers}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("bin_start,line,direction,class,count"));
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        (row.len(), row[1], row[2]),
        (5, "count-approach", "in"),
        "{csv}"
    );

    // Bad parameters: a 400 in the envelope naming the parameter.
    for (query, named) in [
        ("bin=61", "bin"),
        ("since=yesterday", "since"),
        ("format=xml", "format"),
    ] {
        let (status, _, body) = http(
            &service.addr,
            "GET",
            &format!("/api/cameras/3/counts?{query}"),
            &[],
        );
        let v = envelope(&body);
        assert_eq!(
            (status, v["code"].as_u64()),
            (400, Some(400)),
            "{query}: {body}"
        );
        assert!(
            v["msg"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }

    // Danger events: one per episode (the clip's tailgating pair, at most once per pass), not
    // one per frame; each with the frame it started on.
    let (status, _, body) = http(&service.addr, "GET", "/api/events?cameraId=3", &[]);
    assert_eq!(status, 200, "{body}");
    let events = envelope(&body)["data"].as_array().unwrap().clone();
    assert!(events.len() <= 12, "{} events: {body}", events.len());
    for e in &events {
        let snapshot = e["snapshot"].as_str().unwrap();
        assert!(Path::new(snapshot).is_file(), "{e}");
    }

    // Stopped (the writer flushes what waits), started again without the camera: the counts
    // are all there, and nothing counts twice.
    assert_eq!(service.terminate(Duration::from_secs(20)), Some(0));
    let before = {
        let conn_service = Service::start(&[
            ("ALGO_DATABASE_PATH", db.to_str().unwrap()),
            ("ALGO_MEASUREMENT_BIN_SECONDS", "60"),
        ]);
        stored_crossings(&conn_service)
    };
    assert!(
        before >= live as u64,
        "{before} stored, {live} counted live"
    );
    let again = Service::start(&[
        ("ALGO_DATABASE_PATH", db.to_str().unwrap()),
        ("ALGO_MEASUREMENT_BIN_SECONDS", "60"),
    ]);
    assert_eq!(stored_crossings(&again), before);
}

/// `analyze` counts the whole file as one bin: the last result's `trafficStats.lines` holds
/// every crossing of the clip, and `lanes` every lane with its passes.
#[test]
fn analyze_counts_the_whole_clip_in_traffic_stats() {
    let dir = tempfile::tempdir().unwrap();
    let scenes = scenes_dir(dir.path());
    let out = run_ok(
        traffic_algo(dir.path())
            .args(["analyze", "--model"])
            .arg(model())
            .arg("--scene")
            .arg(scenes.join("3.yaml"))
            .arg(media("road-cars-h264.mp4")),
    );
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "detection_result")
        .collect();
    let counts = |v: &Value| {
        let line = &v["data"]["trafficStats"]["lines"][0];
        assert_eq!(line["name"], "count-approach", "{v}");
        (line["in"].as_u64().unwrap(), line["out"].as_u64().unwrap())
    };
    let first = counts(&results[0]);
    let last = counts(results.last().unwrap());
    assert_eq!(first, (0, 0));
    assert!(last.0 >= 5 && last.1 == 0, "{last:?}");
    // Counts only grow through the clip.
    let ins: Vec<u64> = results.iter().map(|v| counts(v).0).collect();
    assert!(ins.windows(2).all(|w| w[0] <= w[1]), "{ins:?}");
    let lanes = results.last().unwrap()["data"]["trafficStats"]["lanes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(lanes.len(), 2, "{lanes:?}");
    assert!(lanes.iter().all(|l| l["queueLengthM"] == 0.0), "{lanes:?}");
}
