//! [`Store`], the handle on the measurement database: cheap to clone, safe to share between
//! threads, synchronous (from async code, call it through `spawn_blocking`). It keeps one
//! connection for writes and one for reads, each opened on first use and opened again after the
//! server dropped it, so a database that is down at start or restarts later only fails the calls
//! made meanwhile. Each new connection brings the schema up to date.
//!
//! Each store is one run: its id goes into every bin row it writes, so that its rows hold
//! absolute values that a retried write replaces, and queries sum over runs.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Backend, StoreConfig};
use crate::connection::Connection;
use crate::error::StoreError;
use crate::queries::{self, BinRange};
use crate::rows::{Batch, CountBin, EventFilter, EventRow, MovementBin, SpeedBin};
use crate::{schema, upserts};

/// The measurement database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    run: String,
    writer: Mutex<Option<Connection>>,
    reader: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.config.backend)
            .field("run", &self.inner.run)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database now (creating the SQLite file, connecting to PostgreSQL) and brings
    /// its schema up to date; an error says what failed.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let store = Self::open_lazy(config);
        store.inner.with(&store.inner.writer, |_| Ok(()))?;
        Ok(store)
    }

    /// A store that opens the database on first use (and again after each failure to), so that
    /// a database that is down at start delays the writes instead of stopping the service.
    pub fn open_lazy(config: &StoreConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                run: new_run_id(),
                writer: Mutex::new(None),
                reader: Mutex::new(None),
            }),
        }
    }

    /// This store's run id (16 hex digits), written into every bin row.
    pub fn run(&self) -> &str {
        &self.inner.run
    }

    /// `sqlite` or `postgresql`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.config.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// The database as shown in messages (the file, or the URL without its password).
    pub fn describe(&self) -> String {
        self.inner.config.backend.describe()
    }

    /// Writes the batch in one transaction: each row replaces this run's row of the same key.
    pub fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let run = self.inner.run.as_str();
        self.inner.with(&self.inner.writer, |conn| {
            conn.transaction(|sql| upserts::write(sql, run, batch))
        })
    }

    /// Line crossings of a camera with `since <= bin_start < until` (unix seconds), summed over
    /// runs into bins of `bin` seconds; ordered by bin, line, direction, class.
    pub fn counts(
        &self,
        camera_id: i64,
        since: i64,
        until: i64,
        bin: i64,
    ) -> Result<Vec<CountBin>, StoreError> {
        let range = BinRange {
            camera_id,
            since,
            until,
            bin,
        };
        self.read(|sql| queries::counts(sql, range))
    }

    /// Zone-to-zone trips of a camera, as [`counts`](Self::counts); ordered by bin, from, to,
    /// class.
    pub fn movements(
        &self,
        camera_id: i64,
        since: i64,
        until: i64,
        bin: i64,
    ) -> Result<Vec<MovementBin>, StoreError> {
        let range = BinRange {
            camera_id,
            since,
            until,
            bin,
        };
        self.read(|sql| queries::movements(sql, range))
    }

    /// Lane speeds of a camera, as [`counts`](Self::counts), the histograms of a bin merged
    /// before its statistics are read; ordered by bin, lane, class.
    pub fn speeds(
        &self,
        camera_id: i64,
        since: i64,
        until: i64,
        bin: i64,
    ) -> Result<Vec<SpeedBin>, StoreError> {
        let range = BinRange {
            camera_id,
            since,
            until,
            bin,
        };
        self.read(|sql| queries::speeds(sql, range))
    }

    /// The events the filter lets through, newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        self.read(|sql| queries::events(sql, filter))
    }

    /// Deletes the bins and events older than the retention (none when it is 0) as of
    /// `now_unix`; the number of rows deleted.
    pub fn prune(&self, now_unix: i64) -> Result<u64, StoreError> {
        let days = self.inner.config.retention_days;
        if days == 0 {
            return Ok(0);
        }
        let cutoff = now_unix.saturating_sub(i64::from(days) * 86_400);
        self.inner.with(&self.inner.writer, |conn| {
            conn.transaction(|sql| queries::prune(sql, cutoff))
        })
    }

    fn read<T>(
        &self,
        f: impl Fn(&mut dyn crate::sql::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let out = self.inner.with(&self.inner.reader, |conn| conn.read(&f));
        let dropped = || {
            self.inner
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none()
        };
        // A read is safe to repeat: once more on a new connection when the one it used turned
        // out closed (the server restarted since it was opened).
        if out.is_err() && dropped() {
            return self.inner.with(&self.inner.reader, |conn| conn.read(&f));
        }
        out
    }
}

impl Inner {
    /// Runs `f` on the connection in `slot`, opening it first if there is none or the server
    /// closed it; a connection found closed after `f` is dropped, to be opened again next time.
    fn with<T>(
        &self,
        slot: &Mutex<Option<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = match slot.take() {
            Some(conn) if !conn.is_closed() => conn,
            _ => self.connect()?,
        };
        let conn = slot.insert(conn);
        let out = f(conn);
        if conn.is_closed() {
            *slot = None;
        }
        out
    }

    /// A new connection, the schema checked (on every connection: the database may have been
    /// replaced by an empty one while the store was away).
    fn connect(&self) -> Result<Connection, StoreError> {
        let mut conn = Connection::open(&self.config.backend)?;
        let applied = schema::migrate(&mut conn, unix_now())?;
        if !applied.is_empty() {
            tracing::info!(
                database = %self.config.backend.describe(),
                versions = ?applied,
                "database schema migrated"
            );
        }
        Ok(conn)
    }
}

/// Now, unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A run id unlikely to repeat: 16 hex digits hashed from the time, the process id and a
/// counter, with the randomly keyed hasher of the standard library.
fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_16_hex_digits_and_differ() {
        let ids: std::collections::BTreeSet<String> = (0..100).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }
}
