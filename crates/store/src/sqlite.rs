//! The embedded SQLite backend: the file (and its folder) created on first open, write-ahead
//! logging so that readers never wait for the writer, and a busy timeout so that two
//! connections (or processes) writing at once take turns instead of failing.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::StoreError;
use crate::sql::{Dialect, Sql, Statement, Value, failed};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if needed) the database file, in WAL mode.
pub(crate) fn open(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            path: folder.to_path_buf(),
            source,
        })?;
    }
    let cannot = |e: rusqlite::Error| StoreError::Connect {
        target: path.display().to_string(),
        message: crate::error::chain(&e),
    };
    let conn = rusqlite::Connection::open(path).map_err(cannot)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(cannot)?;
    // `journal_mode` answers with the mode now in force.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(cannot)?;
    // With WAL, NORMAL loses at most the last commits on power loss, never consistency.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(cannot)?;
    Ok(conn)
}

/// The store's SQL on a SQLite connection or transaction (which derefs to one).
pub(crate) struct SqliteSql<'a>(pub(crate) &'a rusqlite::Connection);

impl Sql for SqliteSql<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn batch(&mut self, statement: Statement<'_>) -> Result<(), StoreError> {
        self.0
            .execute_batch(statement.sql)
            .map_err(|e| failed(Dialect::Sqlite, statement, &e))
    }

    fn execute(
        &mut self,
        statement: Statement<'_>,
        rows: &[Vec<Value>],
    ) -> Result<u64, StoreError> {
        let fail = |e: rusqlite::Error| failed(Dialect::Sqlite, statement, &e);
        let mut prepared = self.0.prepare(statement.sql).map_err(fail)?;
        let mut changed = 0;
        for row in rows {
            changed += prepared
                .execute(rusqlite::params_from_iter(row))
                .map_err(fail)? as u64;
        }
        Ok(changed)
    }

    fn query(
        &mut self,
        statement: Statement<'_>,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let fail = |e: rusqlite::Error| failed(Dialect::Sqlite, statement, &e);
        let mut prepared = self.0.prepare(statement.sql).map_err(fail)?;
        let width = prepared.column_count();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params))
            .map_err(fail)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i).map_err(fail)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => {
                        return Err(StoreError::Corrupt {
                            what: statement.action,
                            message: format!("column {i} holds a blob"),
                        });
                    }
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Int(v) => ValueRef::Integer(*v),
            Self::Real(v) => ValueRef::Real(*v),
            Self::Text(v) => ValueRef::Text(v.as_bytes()),
        }))
    }
}
