//! One open database connection of either backend, and the two ways the store uses it: plain
//! reads, and transactions that commit only if everything in them succeeded.

use rusqlite::TransactionBehavior;

use crate::config::Backend;
use crate::error::StoreError;
use crate::postgresql::{self, PostgresSql};
use crate::sql::{Dialect, Sql, Statement, failed};
use crate::sqlite::{self, SqliteSql};

/// An open connection.
pub(crate) enum Connection {
    /// To a SQLite file.
    Sqlite(rusqlite::Connection),
    /// To a PostgreSQL server.
    Postgres(Box<postgres::Client>),
}

/// The statement behind a failed `BEGIN` or `COMMIT`.
const fn transaction(action: &'static str) -> Statement<'static> {
    Statement { action, sql: "" }
}

impl Connection {
    /// Opens a connection to `backend`.
    pub(crate) fn open(backend: &Backend) -> Result<Self, StoreError> {
        Ok(match backend {
            Backend::Sqlite(path) => Self::Sqlite(sqlite::open(path)?),
            Backend::Postgres(url) => Self::Postgres(Box::new(postgresql::connect(url)?)),
        })
    }

    /// Whether the connection is gone for good (the server closed it) and must be reopened.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Sqlite(_) => false,
            Self::Postgres(client) => client.is_closed(),
        }
    }

    /// Runs `f` on the connection, outside any transaction.
    pub(crate) fn read<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Self::Sqlite(conn) => f(&mut SqliteSql(conn)),
            Self::Postgres(client) => f(&mut PostgresSql(&mut **client)),
        }
    }

    /// Runs `f` in a transaction, committed if `f` succeeds and rolled back otherwise. SQLite
    /// takes the write lock at `BEGIN`, so that a transaction never fails halfway for a lock.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Self::Sqlite(conn) => {
                let fail =
                    |action, e: rusqlite::Error| failed(Dialect::Sqlite, transaction(action), &e);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| fail("starting a transaction", e))?;
                let out = f(&mut SqliteSql(&tx))?;
                tx.commit().map_err(|e| fail("committing", e))?;
                Ok(out)
            }
            Self::Postgres(client) => {
                let fail =
                    |action, e: postgres::Error| failed(Dialect::Postgres, transaction(action), &e);
                let mut tx = client
                    .transaction()
                    .map_err(|e| fail("starting a transaction", e))?;
                let out = f(&mut PostgresSql(&mut tx))?;
                tx.commit().map_err(|e| fail("committing", e))?;
                Ok(out)
            }
        }
    }
}
