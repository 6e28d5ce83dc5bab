//! The database schema as ordered migrations, applied when a connection opens: all of them in
//! one transaction, each recorded in `schema_migrations`, so opening again changes nothing and
//! two processes opening one fresh database at once take turns (see
//! [`Dialect::migration_lock`]). Each migration has its SQL per backend; where the dialects agree
//! (SQLite accepts PostgreSQL's type names) both point to the same text.
//!
//! Bin rows carry the `run` that wrote them: a run's row holds an absolute value (an upsert
//! replaces it) and queries sum over runs. So a retried write never counts twice and a restart,
//! being a new run, adds.

use std::collections::BTreeSet;

use crate::error::StoreError;
use crate::sql::{Columns, Dialect, Statement};

/// One step of the schema.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    const fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// Version 1: the bins, the events and the indexes their queries and pruning use (the primary
/// keys lead with `camera_id, bin_start`, which serves the per-camera time-range queries).
const V1: &str = "
CREATE TABLE counts (
    camera_id BIGINT NOT NULL,
    bin_start BIGINT NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    class TEXT NOT NULL,
    run TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (camera_id, bin_start, line, direction, class, run)
);
CREATE TABLE movements (
    camera_id BIGINT NOT NULL,
    bin_start BIGINT NOT NULL,
    from_zone TEXT NOT NULL,
    to_zone TEXT NOT NULL,
    class TEXT NOT NULL,
    run TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (camera_id, bin_start, from_zone, to_zone, class, run)
);
CREATE TABLE speeds (
    camera_id BIGINT NOT NULL,
    bin_start BIGINT NOT NULL,
    lane TEXT NOT NULL,
    class TEXT NOT NULL,
    run TEXT NOT NULL,
    count BIGINT NOT NULL,
    sum_kmh DOUBLE PRECISION NOT NULL,
    over_limit BIGINT NOT NULL,
    histogram TEXT NOT NULL,
    PRIMARY KEY (camera_id, bin_start, lane, class, run)
);
CREATE TABLE events (
    uid TEXT PRIMARY KEY,
    camera_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    track_ids TEXT NOT NULL,
    measures TEXT NOT NULL,
    description TEXT NOT NULL,
    snapshot TEXT
);
CREATE INDEX counts_by_bin ON counts (bin_start);
CREATE INDEX movements_by_bin ON movements (bin_start);
CREATE INDEX speeds_by_bin ON speeds (bin_start);
CREATE INDEX events_by_start ON events (started_at);
CREATE INDEX events_by_camera ON events (camera_id, started_at);
";

/// The migrations, in order.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sqlite: V1,
    postgres: V1,
}];

const CREATE_TABLE: Statement<'static> = Statement {
    action: "creating schema_migrations",
    sql: "CREATE TABLE IF NOT EXISTS schema_migrations (
        version BIGINT PRIMARY KEY,
        applied_at BIGINT NOT NULL
    )",
};

const APPLIED: Statement<'static> = Statement {
    action: "reading schema_migrations",
    sql: "SELECT version FROM schema_migrations",
};

const RECORD: Statement<'static> = Statement {
    action: "recording a migration",
    sql: "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
};

/// Brings the schema up to date; the versions applied now (none when it already was).
pub(crate) fn migrate(
    connection: &mut crate::connection::Connection,
    now_unix: i64,
) -> Result<Vec<i64>, StoreError> {
    connection.transaction(|sql| {
        let dialect = sql.dialect();
        if let Some(lock) = dialect.migration_lock() {
            sql.batch(lock)?;
        }
        sql.batch(CREATE_TABLE)?;
        let applied = sql
            .query(APPLIED, &[])?
            .into_iter()
            .map(|row| Columns::new(row, "schema version").int())
            .collect::<Result<BTreeSet<i64>, _>>()?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some(&found) = applied.last().filter(|&&v| v > known) {
            return Err(StoreError::NewerSchema { found, known });
        }
        let mut now_applied = Vec::new();
        for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            sql.batch(Statement {
                action: "migrating the schema",
                sql: migration.sql(dialect),
            })?;
            sql.execute(RECORD, &[vec![migration.version.into(), now_unix.into()]])?;
            now_applied.push(migration.version);
        }
        Ok(now_applied)
    })
}
