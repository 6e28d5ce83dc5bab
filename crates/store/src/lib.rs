//! The traffic measurement database: line-crossing counts, zone-to-zone movements and lane
//! speeds in time bins, and danger events, in embedded SQLite (the default) or PostgreSQL. Pure
//! I/O: it knows nothing of cameras or scenes, only rows.
//!
//! Layout:
//! - [`rows`]: what is written ([`Batch`] of [`CountRow`], [`MovementRow`], [`SpeedRow`],
//!   [`EventRow`]) and what queries return ([`CountBin`], [`MovementBin`], [`SpeedBin`]).
//! - [`histogram`]: [`SpeedHistogram`], speeds in 1 km/h buckets that merge and give percentiles.
//! - [`config`]: [`StoreConfig`] and [`Backend`]; URLs shown without their password.
//! - [`store`]: [`Store`], the synchronous, shareable handle: open, write, query, prune.
//! - [`writer`]: [`Writer`], which writes submitted batches from its own thread, merging,
//!   retrying and counting what it cannot keep.
//! - [`error`]: the one error type, [`StoreError`].
//! - inside: `schema` (migrations), `upserts` and `queries` (the SQL, written once), `sql`
//!   (the little the SQL needs from a backend), `connection`, `sqlite` and `postgresql` (the
//!   two backends), `pending` (the writer's map of waiting rows).
//!
//! Rows are absolute values per process run: each [`Store`] has a run id written into its bin
//! rows, an upsert replaces the run's row and queries sum over runs. So a retried write never
//! counts twice, and a restart (a new run) adds to what earlier runs wrote.

pub mod config;
mod connection;
pub mod error;
pub mod histogram;
mod pending;
mod postgresql;
mod queries;
pub mod rows;
mod schema;
mod sql;
mod sqlite;
pub mod store;
mod upserts;
pub mod writer;

pub use config::{Backend, StoreConfig, redact_url};
pub use error::StoreError;
pub use histogram::{HistogramError, SpeedHistogram};
pub use rows::{
    Batch, CountBin, CountRow, Direction, EventFilter, EventRow, MovementBin, MovementRow,
    SpeedBin, SpeedRow,
};
pub use store::Store;
pub use writer::{Writer, WriterConfig, WriterHandle, WriterStats};
