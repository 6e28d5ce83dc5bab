//! What the test cases run on: [`Db`], a fresh database of either backend (a SQLite file in a
//! temporary folder, or a database of its own on the shared PostgreSQL server), and the rows
//! the cases write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use store::{
    Backend, CountRow, Direction, EventRow, MovementRow, SpeedHistogram, SpeedRow, Store,
    StoreConfig,
};

use crate::postgres_server;

/// A fresh, empty database.
pub(crate) enum Db {
    /// A SQLite file (not yet created) in a temporary folder.
    Sqlite(tempfile::TempDir),
    /// A database of its own on the shared server: its URL.
    Postgres(String),
}

impl Db {
    /// A SQLite database.
    pub(crate) fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("temporary folder"))
    }

    /// A PostgreSQL database.
    pub(crate) fn postgres() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let server = postgres_server::shared();
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        server.create_database(&name);
        Self::Postgres(server.url(&name))
    }

    /// The store's settings for this database, keeping everything (the rows the cases write
    /// are from 2023).
    pub(crate) fn config(&self) -> StoreConfig {
        let backend = match self {
            Self::Sqlite(dir) => Backend::Sqlite(dir.path().join("data/traffic.db")),
            Self::Postgres(url) => Backend::Postgres(url.clone()),
        };
        StoreConfig {
            backend,
            retention_days: 0,
        }
    }

    /// A new store (a new run) on this database.
    pub(crate) fn open(&self) -> Store {
        Store::open(&self.config()).expect("open the store")
    }

    /// The versions in `schema_migrations`, read without the store.
    pub(crate) fn migration_versions(&self) -> Vec<i64> {
        const SQL: &str = "SELECT version FROM schema_migrations ORDER BY version";
        match self {
            Self::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("data/traffic.db")).unwrap();
                let mut statement = conn.prepare(SQL).unwrap();
                let rows = statement.query_map([], |r| r.get(0)).unwrap();
                rows.map(Result::unwrap).collect()
            }
            Self::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
                let rows = client.query(SQL, &[]).unwrap();
                rows.iter().map(|r| r.get(0)).collect()
            }
        }
    }
}

/// A count row of camera 1.
pub(crate) fn count(
    bin_start: i64,
    line: &str,
    direction: Direction,
    class: &str,
    n: u64,
) -> CountRow {
    CountRow {
        camera_id: 1,
        bin_start,
        line: line.into(),
        direction,
        class: class.into(),
        count: n,
    }
}

/// A movement row of camera 1.
pub(crate) fn movement(bin_start: i64, from: &str, to: &str, n: u64) -> MovementRow {
    MovementRow {
        camera_id: 1,
        bin_start,
        from: from.into(),
        to: to.into(),
        class: "car".into(),
        count: n,
    }
}

/// A speed row of camera 1's lane `nb-1` for cars, over a limit of 50 km/h.
pub(crate) fn speed(bin_start: i64, speeds: &[f64]) -> SpeedRow {
    let mut histogram = SpeedHistogram::new();
    for &v in speeds {
        histogram.add(v, v > 50.0);
    }
    SpeedRow {
        camera_id: 1,
        bin_start,
        lane: "nb-1".into(),
        class: "car".into(),
        histogram,
    }
}

/// An event of `camera_id` started at `started_at_ms`.
pub(crate) fn event(
    uid: &str,
    camera_id: i64,
    kind: &str,
    level: &str,
    started_at_ms: i64,
) -> EventRow {
    EventRow {
        uid: uid.into(),
        camera_id,
        kind: kind.into(),
        level: level.into(),
        started_at_ms,
        ended_at_ms: None,
        track_ids: vec![3, 17],
        measures: serde_json::json!({"headwaySeconds": 0.6, "speedKmh": 54.5}),
        description: format!("{kind} on camera {camera_id}"),
        snapshot: Some(format!("snapshots/{uid}.jpg")),
    }
}

/// Waits until `done` holds, polling; panics with `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
