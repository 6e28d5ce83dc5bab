//! The writer's cases on both backends: waiting rows merged by key, periodic flushes of
//! absolute values, the flush at close; and, per backend, a database that is unreachable for a
//! while (rows kept, errors counted, everything written once it is back).

use std::time::Duration;

use store::Direction::In;
use store::{Backend, Batch, Store, StoreConfig, Writer, WriterConfig, WriterHandle};

use crate::cases::H;
use crate::postgres_server::{PgServer, free_port};
use crate::support::{Db, count, event, wait_until};

/// Quick flushes and retries, so the tests need not wait.
fn quick() -> WriterConfig {
    WriterConfig {
        max_pending_keys: 1000,
        flush_every: Duration::from_millis(50),
        prune_every: Duration::from_secs(3600),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        close_timeout: Duration::from_secs(2),
    }
}

fn counts(rows: Vec<store::CountRow>) -> Batch {
    Batch {
        counts: rows,
        ..Batch::default()
    }
}

/// Camera 1's `stop-n`/in/car crossings in the hour from `H`.
fn stop_line_total(store: &Store) -> u64 {
    store
        .counts(1, H, H + 3600, 3600)
        .unwrap()
        .iter()
        .filter(|c| c.line == "stop-n" && c.direction == In)
        .map(|c| c.count)
        .sum()
}

const LONG: Duration = Duration::from_secs(20);

pub(crate) fn waiting_rows_merge_and_close_flushes_them(db: &Db) {
    let store = db.open();
    let writer = Writer::spawn(
        store.clone(),
        WriterConfig {
            flush_every: Duration::from_secs(3600),
            ..quick()
        },
    )
    .unwrap();
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 1)]));
    writer.submit(counts(vec![
        count(H, "stop-n", In, "car", 5),
        count(H, "other", In, "car", 2),
    ]));
    assert_eq!(writer.stats().pending_rows, 2);
    let stats = writer.close();
    assert_eq!(
        (stats.rows_written, stats.pending_rows, stats.write_errors),
        (2, 0, 0)
    );
    assert!(stats.up && stats.last_success.is_some() && stats.last_error.is_none());
    assert_eq!(stop_line_total(&store), 5);
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 9)]));
    assert_eq!(writer.stats().rows_dropped, 1);
    assert_eq!(writer.close().rows_written, 2);
}

pub(crate) fn flushes_write_absolute_values_periodically(db: &Db) {
    let store = db.open();
    let writer = Writer::spawn(store.clone(), quick()).unwrap();
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 3)]));
    wait_until("the first flush", LONG, || writer.stats().rows_written == 1);
    assert_eq!(stop_line_total(&store), 3);
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 4)]));
    wait_until("the second flush", LONG, || {
        writer.stats().rows_written == 2
    });
    assert_eq!(stop_line_total(&store), 4);
    // The same run's rows: the flush replaced its row instead of adding.
    let stats = writer.close();
    assert_eq!((stats.write_errors, stats.rows_dropped), (0, 0));
}

/// Submits rows while the writer's database is unreachable, checks they wait (the later value
/// of a key replacing the earlier, new keys beyond the room dropped and counted), makes the
/// database reachable with `fix`, and checks everything waiting got written.
fn rows_wait_for_the_database(config: &StoreConfig, fix: impl FnOnce(), expected_error: &str) {
    let writer = Writer::spawn(
        Store::open_lazy(config),
        WriterConfig {
            max_pending_keys: 3,
            ..quick()
        },
    )
    .unwrap();
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 1)]));
    wait_until("a failed write", LONG, || writer.stats().write_errors >= 2);
    writer.submit(Batch {
        counts: vec![
            count(H, "stop-n", In, "car", 6),
            count(H, "second", In, "car", 2),
        ],
        events: vec![event("e1", 1, "tailgating", "high", H * 1000)],
        ..Batch::default()
    });
    writer.submit(counts(vec![count(H, "dropped", In, "car", 1)]));
    let stats = writer.stats();
    assert_eq!(
        (stats.pending_rows, stats.rows_dropped, stats.rows_written),
        (3, 1, 0)
    );
    assert!(!stats.up, "{stats:?}");
    let error = stats.last_error.unwrap_or_default();
    assert!(
        error.contains(expected_error) && !error.contains("secret"),
        "{error}"
    );
    fix();
    wait_until("the rows written", LONG, || {
        writer.stats().pending_rows == 0
    });
    let stats = writer.close();
    assert_eq!(
        (stats.rows_written, stats.rows_dropped),
        (3, 1),
        "{stats:?}"
    );
    assert!(stats.up, "{stats:?}");
    let store = Store::open(config).unwrap();
    assert_eq!(stop_line_total(&store), 6);
    let lines: Vec<String> = store
        .counts(1, H, H + 3600, 3600)
        .unwrap()
        .into_iter()
        .map(|c| c.line)
        .collect();
    assert_eq!(lines, ["second", "stop-n"]);
    assert_eq!(
        store.events(&store::EventFilter::default()).unwrap().len(),
        1
    );
}

/// SQLite: the file's folder cannot be created (its parent is a file) until the file goes.
pub(crate) fn sqlite_rows_wait_for_a_database_that_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let config = StoreConfig {
        backend: Backend::Sqlite(blocker.join("data/traffic.db")),
        retention_days: 0,
    };
    let fix = || std::fs::remove_file(&blocker).unwrap();
    rows_wait_for_the_database(&config, fix, "cannot create the database folder");
}

/// PostgreSQL: nothing listens on the URL's port until a server starts there.
pub(crate) fn postgres_rows_wait_for_a_server_that_is_not_up_yet() {
    let port = free_port();
    let config = StoreConfig {
        backend: Backend::Postgres(format!(
            "postgresql://postgres:secret@127.0.0.1:{port}/postgres"
        )),
        retention_days: 0,
    };
    let mut server = None;
    let fix = || server = Some(PgServer::start_on(port));
    rows_wait_for_the_database(&config, fix, "cannot open the database");
}

/// PostgreSQL: the server stops while the writer runs and comes back on the same data; the
/// writer reconnects and writes what waited.
pub(crate) fn postgres_writer_reconnects_after_a_restart() {
    let mut server = PgServer::start_on(free_port());
    let config = StoreConfig {
        backend: Backend::Postgres(server.url("postgres")),
        retention_days: 0,
    };
    let store = Store::open(&config).unwrap();
    let writer: WriterHandle = Writer::spawn(store.clone(), quick()).unwrap();
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 1)]));
    wait_until("the first flush", LONG, || writer.stats().rows_written == 1);
    // A reader whose connection is open when the server goes.
    assert_eq!(stop_line_total(&store), 1);
    server.stop();
    writer.submit(counts(vec![count(H, "stop-n", In, "car", 2)]));
    wait_until("a failed write", LONG, || writer.stats().write_errors >= 1);
    assert_eq!(writer.stats().pending_rows, 1);
    server.start();
    wait_until("the rows written", LONG, || {
        writer.stats().rows_written == 2
    });
    let stats = writer.close();
    assert!(stats.up && stats.pending_rows == 0, "{stats:?}");
    assert!(stats.last_error.is_some(), "{stats:?}");
    assert_eq!(stop_line_total(&Store::open(&config).unwrap()), 2);
    // Its first read after the restart is answered (on a new connection), not refused.
    let read = store.counts(1, H, H + 3600, 3600).unwrap();
    assert_eq!(read.iter().map(|c| c.count).sum::<u64>(), 2);
}

/// The writer prunes after its first good flush (then hourly): rows older than the retention
/// go, its own recent ones stay.
pub(crate) fn the_writer_prunes_old_rows(db: &Db) {
    let config = StoreConfig {
        retention_days: 30,
        ..db.config()
    };
    let store = Store::open(&config).unwrap();
    store
        .write(&counts(vec![count(H, "stop-n", In, "car", 3)]))
        .unwrap();
    let writer = Writer::spawn(store.clone(), quick()).unwrap();
    let now = std::time::UNIX_EPOCH.elapsed().unwrap().as_secs() as i64;
    let hour = now / 3600 * 3600;
    writer.submit(counts(vec![count(hour, "stop-n", In, "car", 1)]));
    wait_until("the old row pruned", LONG, || stop_line_total(&store) == 0);
    assert_eq!(writer.close().rows_written, 1);
    let recent = store.counts(1, hour, hour + 3600, 3600).unwrap();
    assert_eq!(recent.iter().map(|c| c.count).sum::<u64>(), 1);
}
