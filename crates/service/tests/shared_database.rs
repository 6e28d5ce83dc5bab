//! Two service instances measuring into one real PostgreSQL (`ALGO_DATABASE_URL`), as a fleet
//! does: each counts its own camera on real footage, every crossing reaches the shared database
//! once, either instance's API reads both cameras, and a database that goes down loses nothing:
//! the instances keep counting, report it (health `DEGRADED`, `database_*` metrics) and write
//! what waited when it is back. The server is Debian's PostgreSQL, run by the store crate's test
//! harness (`crates/store/tests/database/postgres_server.rs`).

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

#[path = "../../store/tests/database/postgres_server.rs"]
#[allow(dead_code)] // the harness offers more than this test uses
mod postgres_server;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Service, http, media, repo_root};

/// Waits up to `within` for `check`, saying `what` failed.
fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The health check's `data`.
fn health(service: &Service) -> Value {
    let (_, _, body) = http(&service.addr, "GET", "/api/health/health_check", &[]);
    serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
}

/// An instance running camera `id` on the looping road clip with its scene, writing to `url`.
fn instance(dir: &std::path::Path, id: i64, url: &str) -> Service {
    let scenes = dir.join(format!("scenes-{id}"));
    std::fs::create_dir_all(&scenes).unwrap();
    std::fs::copy(
        repo_root().join("tests/data/eval/scenes/road-cars.yaml"),
        scenes.join(format!("{id}.yaml")),
    )
    .unwrap();
    let clip = media("road-cars-h264.mp4").canonicalize().unwrap();
    let cameras = dir.join(format!("cameras-{id}.yaml"));
    std::fs::write(
        &cameras,
        format!(
            "cameras:\n  - id: {id}\n    url: file://{}?loop=1\n",
            clip.display()
        ),
    )
    .unwrap();
    let snapshots = dir.join(format!("snapshots-{id}"));
    Service::start(&[
        ("ALGO_SCENES_DIR", scenes.to_str().unwrap()),
        ("ALGO_CAMERAS_FILE", cameras.to_str().unwrap()),
        ("ALGO_ALLOWED_SOURCE_SCHEMES", "file"),
        ("ALGO_DATABASE_URL", url),
        ("ALGO_MEASUREMENT_BIN_SECONDS", "60"),
        ("ALGO_SNAPSHOT_DIR", snapshots.to_str().unwrap()),
    ])
}

#[test]
fn two_instances_count_into_one_postgres_once_and_lose_nothing_while_it_is_down() {
    let mut pg = postgres_server::PgServer::start_on(postgres_server::free_port());
    pg.create_database("fleet");
    let url = pg.url("fleet");
    let dir = tempfile::tempdir().unwrap();
    let a = instance(dir.path(), 3, &url);
    let b = instance(dir.path(), 4, &url);
    let fleet = [(&a, 3), (&b, 4)];

    // Both count, and the database holds both cameras, readable from either instance.
    for (service, id) in fleet {
        wait_for("crossings counted", Duration::from_secs(90), || {
            service.counted_crossings(id, None) >= 2
        });
    }
    for (service, id) in fleet {
        let live = service.counted_crossings(id, None);
        wait_for("crossings stored", Duration::from_secs(40), || {
            a.stored_crossings(id) >= live && b.stored_crossings(id) >= live
        });
    }
    assert_eq!(health(&a)["database"]["backend"], "postgresql");

    // The database goes down: the instances go on counting and say so.
    pg.stop();
    for (service, _) in fleet {
        wait_for("DEGRADED health", Duration::from_secs(40), || {
            let h = health(service);
            h["status"] == "DEGRADED" && h["database"]["up"] == false
        });
        assert!(service.metric("database_write_errors_total") >= 1.0);
        assert_eq!(service.metric("database_up"), 0.0);
    }
    let during: Vec<u64> = fleet
        .iter()
        .map(|(s, id)| s.counted_crossings(*id, None))
        .collect();
    wait_for(
        "crossings counted while the database is down",
        Duration::from_secs(60),
        || {
            fleet
                .iter()
                .zip(&during)
                .all(|((s, id), before)| s.counted_crossings(*id, None) >= before + 2)
        },
    );
    for (service, _) in fleet {
        assert!(service.metric("database_pending_rows") >= 1.0);
    }

    // Back: what waited is written, once; nothing was dropped.
    pg.start();
    for (service, id) in fleet {
        let live = service.counted_crossings(id, None);
        wait_for(
            "rows written after the outage",
            Duration::from_secs(120),
            || a.stored_crossings(id) >= live,
        );
        // Never more than counted: no row written twice, no camera counted by both.
        let kept = b.stored_crossings(id);
        assert!(
            kept <= service.counted_crossings(id, None),
            "camera {id}: {kept} stored"
        );
        assert_eq!(service.metric("database_rows_dropped_total"), 0.0);
    }
    for (service, _) in fleet {
        wait_for("UP health", Duration::from_secs(30), || {
            health(service)["status"] == "UP"
        });
    }
}
