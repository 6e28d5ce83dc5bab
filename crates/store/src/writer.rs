//! The writer: takes batches from camera pipelines without ever blocking them and writes them
//! from a thread of its own. Submitted rows wait in a map keyed by primary key (a later
//! absolute value replaces an earlier one), flushed every `flush_every` in one transaction. A
//! failed write puts its rows back (unless newer ones of the same keys arrived meanwhile) and is
//! retried with capped exponential backoff; when the map is full, rows of new keys are dropped
//! and counted. Nothing is lost silently: [`WriterStats`] says what was written, dropped and
//! still waiting, for metrics and health. It also prunes old data about hourly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use retry::Backoff;

use crate::error::StoreError;
use crate::pending::Pending;
use crate::rows::Batch;
use crate::store::{Store, unix_now};

/// How long [`WriterHandle::close`] waits beyond `close_timeout` for a write under way.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The writer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Rows (distinct keys) kept waiting at most; beyond, rows of new keys are dropped and
    /// counted. Default 100 000.
    pub max_pending_keys: usize,
    /// Time between flushes. Default 10 s.
    pub flush_every: Duration,
    /// Time between prunes of old data. Default 1 h.
    pub prune_every: Duration,
    /// First wait before retrying a failed write; it doubles up to `retry_max`. Default 1 s.
    pub retry_min: Duration,
    /// Longest wait between retries. Default 60 s.
    pub retry_max: Duration,
    /// How long closing keeps trying to write what waits. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_pending_keys: 100_000,
            flush_every: Duration::from_secs(10),
            prune_every: Duration::from_secs(3600),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// What the writer did so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows written (a row written again after a retry counts again).
    pub rows_written: u64,
    /// Failed database operations (writes and prunes).
    pub write_errors: u64,
    /// Rows dropped: no room while the database was unreachable, or submitted after closing.
    pub rows_dropped: u64,
    /// Rows waiting to be written.
    pub pending_rows: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When a write last succeeded.
    pub last_success: Option<SystemTime>,
    /// Whether the last write succeeded (true before the first one).
    pub up: bool,
}

/// State shared by the handles and the thread.
struct Shared {
    pending: Mutex<Pending>,
    rows_written: AtomicU64,
    write_errors: AtomicU64,
    rows_dropped: AtomicU64,
    closed: AtomicBool,
    health: Mutex<Health>,
}

struct Health {
    up: bool,
    /// Whether rows were dropped since the last successful write (logged once per outage).
    dropping: bool,
    last_error: Option<String>,
    last_success: Option<SystemTime>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn dropped(&self, rows: u64, why: &str) {
        if rows == 0 {
            return;
        }
        self.rows_dropped.fetch_add(rows, Ordering::Relaxed);
        let mut health = lock(&self.health);
        if !health.dropping {
            health.dropping = true;
            tracing::error!(rows, "measurement rows dropped: {why}");
        }
    }

    fn succeeded(&self, store: &Store) {
        let mut health = lock(&self.health);
        if !health.up {
            tracing::info!(database = %store.describe(), "database writable again");
        }
        health.up = true;
        health.dropping = false;
        health.last_success = Some(SystemTime::now());
    }

    fn failed(&self, store: &Store, error: &StoreError) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let pending = lock(&self.pending).len();
        let mut health = lock(&self.health);
        if health.up {
            tracing::warn!(
                database = %store.describe(),
                %error,
                pending,
                "cannot write to the database; rows are kept and the write retried"
            );
        }
        health.up = false;
        health.last_error = Some(error.to_string());
    }
}

/// The writer thread's state; [`Writer::spawn`] starts it.
pub struct Writer {
    store: Store,
    config: WriterConfig,
    shared: Arc<Shared>,
}

/// A handle on the writer: clone it for each producer. When the last handle goes without
/// [`close`](Self::close), the thread still flushes what waits (for up to `close_timeout`).
#[derive(Clone)]
pub struct WriterHandle {
    shared: Arc<Shared>,
    control: Arc<Control>,
}

/// What closing needs; dropped with the last handle, which tells the thread to finish.
struct Control {
    stop: Mutex<Option<SyncSender<Instant>>>,
    /// Disconnected when the thread has ended.
    ended: Mutex<Receiver<()>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    close_timeout: Duration,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer's thread.
    pub fn spawn(store: Store, config: WriterConfig) -> std::io::Result<WriterHandle> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::new(config.max_pending_keys)),
            rows_written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            rows_dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            health: Mutex::new(Health {
                up: true,
                dropping: false,
                last_error: None,
                last_success: None,
            }),
        });
        let (stop_tx, stop_rx) = std::sync::mpsc::sync_channel(1);
        let (ended_tx, ended_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let close_timeout = config.close_timeout;
        let writer = Self {
            store,
            config,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let _ended = ended_tx;
                writer.run(&stop_rx);
            })?;
        Ok(WriterHandle {
            shared,
            control: Arc::new(Control {
                stop: Mutex::new(Some(stop_tx)),
                ended: Mutex::new(ended_rx),
                thread: Mutex::new(Some(thread)),
                close_timeout,
            }),
        })
    }

    /// Flushes every `flush_every` (after a failure: after the backoff's delay) until told to
    /// stop, then flushes what waits until done or the deadline.
    fn run(&self, stop: &Receiver<Instant>) {
        let mut backoff =
            Backoff::new(self.config.retry_min, self.config.retry_max).with_jitter(0.2);
        let mut wait = self.config.flush_every;
        let mut next_prune = Instant::now();
        loop {
            let deadline = match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => None,
                Ok(deadline) => Some(deadline),
                Err(RecvTimeoutError::Disconnected) => {
                    Some(Instant::now() + self.config.close_timeout)
                }
            };
            if let Some(deadline) = deadline {
                return self.drain(deadline, &mut backoff);
            }
            if self.flush() {
                backoff.reset();
                wait = self.config.flush_every;
                if Instant::now() >= next_prune {
                    self.prune();
                    next_prune = Instant::now() + self.config.prune_every;
                }
            } else {
                wait = backoff.next_delay();
            }
        }
    }

    /// Writes what waits; whether nothing is left to write.
    fn flush(&self) -> bool {
        let batch = lock(&self.shared.pending).take();
        if batch.is_empty() {
            return true;
        }
        let rows = batch.len() as u64;
        match self.store.write(&batch) {
            Ok(()) => {
                self.shared.rows_written.fetch_add(rows, Ordering::Relaxed);
                self.shared.succeeded(&self.store);
                true
            }
            Err(error) => {
                let dropped = lock(&self.shared.pending).restore(batch);
                self.shared
                    .dropped(dropped, "too many rows waiting for the database");
                self.shared.failed(&self.store, &error);
                false
            }
        }
    }

    /// The last flushes, until nothing waits or `deadline`.
    fn drain(&self, deadline: Instant, backoff: &mut Backoff) {
        loop {
            if self.flush() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                let rows = lock(&self.shared.pending).len();
                tracing::error!(rows, "the database writer stopped with rows unwritten");
                return;
            }
            std::thread::sleep(backoff.next_delay().min(deadline - now));
        }
    }

    fn prune(&self) {
        match self.store.prune(unix_now()) {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "old measurements pruned"),
            Err(error) => {
                // Not a lost write: counted and reported, but the writer stays up.
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                lock(&self.shared.health).last_error = Some(error.to_string());
                let retry = self.config.prune_every;
                tracing::warn!(%error, ?retry, "cannot prune old measurements");
            }
        }
    }
}

impl WriterHandle {
    /// Queues a batch for the next flush, without blocking on the database. Rows replace the
    /// waiting rows of the same keys; rows of new keys beyond `max_pending_keys`, and all rows
    /// after [`close`](Self::close), are dropped and counted.
    pub fn submit(&self, batch: Batch) {
        if self.shared.closed.load(Ordering::Acquire) {
            self.shared
                .dropped(batch.len() as u64, "submitted after the writer closed");
            return;
        }
        let dropped = lock(&self.shared.pending).submit(batch);
        self.shared
            .dropped(dropped, "too many rows waiting for the database");
    }

    /// What the writer did so far.
    pub fn stats(&self) -> WriterStats {
        let pending_rows = lock(&self.shared.pending).len() as u64;
        let health = lock(&self.shared.health);
        WriterStats {
            rows_written: self.shared.rows_written.load(Ordering::Relaxed),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            rows_dropped: self.shared.rows_dropped.load(Ordering::Relaxed),
            pending_rows,
            last_error: health.last_error.clone(),
            last_success: health.last_success,
            up: health.up,
        }
    }

    /// Stops taking rows, flushes what waits (retrying for up to `close_timeout`) and ends the
    /// thread; the stats at the end (`pending_rows` are the rows that could not be written).
    /// Later calls return at once. Blocks for up to `close_timeout` and a second: from async
    /// code, call it through `spawn_blocking`.
    pub fn close(&self) -> WriterStats {
        self.shared.closed.store(true, Ordering::Release);
        let timeout = self.control.close_timeout;
        if let Some(stop) = lock(&self.control.stop).take() {
            // Fails only if the thread already ended: nothing to tell it then.
            let _ = stop.try_send(Instant::now() + timeout);
        }
        let ended = matches!(
            lock(&self.control.ended).recv_timeout(timeout + CLOSE_GRACE),
            Ok(()) | Err(RecvTimeoutError::Disconnected)
        );
        if ended {
            if let Some(thread) = lock(&self.control.thread).take()
                && thread.join().is_err()
            {
                tracing::error!("the database writer thread panicked");
            }
        } else {
            tracing::warn!("the database writer did not finish in time; left running");
        }
        self.stats()
    }
}
