//! The little the store needs from a database, so that its SQL is written once: run a script,
//! run a statement once per row of parameters, and query rows of plain values. Statements use
//! `?` placeholders; the PostgreSQL side numbers them (`$1`, `$2`, ...). Both backends take the
//! same SQL for everything the store does (upserts with `ON CONFLICT`, `CAST(SUM(..) AS BIGINT)`,
//! integer division for bins); what differs is in [`Dialect`].

use crate::error::StoreError;

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Embedded SQLite.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Dialect {
    /// The name in messages.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// What a migration transaction runs first so that concurrent openers take turns. SQLite
    /// needs nothing: its write transactions (`BEGIN IMMEDIATE`) already exclude each other.
    pub(crate) const fn migration_lock(self) -> Option<Statement<'static>> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some(Statement {
                action: "locking the schema for migration",
                // Any constant, the same in every process: "traffic" in ASCII, as a number.
                sql: "SELECT pg_advisory_xact_lock(32776859953817955)",
            }),
        }
    }
}

/// A statement with what it does, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement<'a> {
    /// What running it means, e.g. `writing counts`.
    pub(crate) action: &'static str,
    /// The SQL, `?` for parameters.
    pub(crate) sql: &'a str,
}

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// A double (`DOUBLE PRECISION`).
    Real(f64),
    /// Text.
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u64> for Value {
    /// Saturates at `i64::MAX` (no count gets there).
    fn from(v: u64) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A connection or transaction the store's SQL runs on.
pub(crate) trait Sql {
    /// The connection's dialect.
    fn dialect(&self) -> Dialect;

    /// Runs a script of statements without parameters.
    fn batch(&mut self, statement: Statement<'_>) -> Result<(), StoreError>;

    /// Runs the statement once per row of parameters (prepared once); rows changed.
    fn execute(&mut self, statement: Statement<'_>, rows: &[Vec<Value>])
    -> Result<u64, StoreError>;

    /// The rows the query returns.
    fn query(
        &mut self,
        statement: Statement<'_>,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, StoreError>;
}

/// The error of a statement that failed.
pub(crate) fn failed(
    dialect: Dialect,
    statement: Statement<'_>,
    error: &dyn std::error::Error,
) -> StoreError {
    StoreError::Database {
        backend: dialect.label(),
        action: statement.action,
        message: crate::error::chain(error),
    }
}

/// A row's columns, read in order.
pub(crate) struct Columns {
    values: std::vec::IntoIter<Value>,
    what: &'static str,
}

impl Columns {
    /// The columns of a row of `what` (e.g. `counts`, for messages).
    pub(crate) fn new(row: Vec<Value>, what: &'static str) -> Self {
        Self {
            values: row.into_iter(),
            what,
        }
    }

    fn wrong(&self, expected: &str, got: Option<&Value>) -> StoreError {
        StoreError::Corrupt {
            what: self.what,
            message: format!("expected {expected}, got {got:?}"),
        }
    }

    /// The next column, an integer or `NULL`.
    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        match self.values.next() {
            Some(Value::Int(v)) => Ok(Some(v)),
            Some(Value::Null) => Ok(None),
            other => Err(self.wrong("an integer", other.as_ref())),
        }
    }

    /// The next column, an integer.
    pub(crate) fn int(&mut self) -> Result<i64, StoreError> {
        self.opt_int()?
            .ok_or_else(|| self.wrong("an integer", Some(&Value::Null)))
    }

    /// The next column, a count (an integer, negative ones read as 0).
    pub(crate) fn count(&mut self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.int()?).unwrap_or(0))
    }

    /// The next column, a number.
    pub(crate) fn real(&mut self) -> Result<f64, StoreError> {
        match self.values.next() {
            Some(Value::Real(v)) => Ok(v),
            // Integers are exact in a double up to 2^53; SQLite may store 3.0 as 3.
            Some(Value::Int(v)) => Ok(v as f64),
            other => Err(self.wrong("a number", other.as_ref())),
        }
    }

    /// The next column, text or `NULL`.
    pub(crate) fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.values.next() {
            Some(Value::Text(v)) => Ok(Some(v)),
            Some(Value::Null) => Ok(None),
            other => Err(self.wrong("text", other.as_ref())),
        }
    }

    /// The next column, text.
    pub(crate) fn text(&mut self) -> Result<String, StoreError> {
        self.opt_text()?
            .ok_or_else(|| self.wrong("text", Some(&Value::Null)))
    }
}
