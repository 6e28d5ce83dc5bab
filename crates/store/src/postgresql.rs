//! The PostgreSQL backend, over the synchronous `postgres` client without TLS: connecting with
//! timeouts (so a dead server fails a write instead of hanging it), `?` placeholders numbered
//! for PostgreSQL, and the store's plain values to and from PostgreSQL's binary types.
//!
//! The client runs its own small runtime: call it from plain threads (the writer's, or
//! `spawn_blocking`), not from inside an async task.

use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{GenericClient, NoTls};

use crate::config::redact_url;
use crate::error::{StoreError, chain};
use crate::sql::{Dialect, Sql, Statement, Value, failed};

/// How long connecting may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the connection counts as dead.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the server at `url`.
pub(crate) fn connect(url: &str) -> Result<postgres::Client, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Url {
        url: redact_url(url),
        message: chain(&e),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("traffic-algo");
    }
    config.connect(NoTls).map_err(|e| StoreError::Connect {
        target: redact_url(url),
        message: chain(&e),
    })
}

/// `sql` with its `?` placeholders numbered: `$1`, `$2`, ... (the store's SQL has no `?` in
/// literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The store's SQL on a PostgreSQL client or transaction.
pub(crate) struct PostgresSql<'a, C>(pub(crate) &'a mut C);

impl<C: GenericClient> Sql for PostgresSql<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn batch(&mut self, statement: Statement<'_>) -> Result<(), StoreError> {
        self.0
            .batch_execute(statement.sql)
            .map_err(|e| failed(Dialect::Postgres, statement, &e))
    }

    fn execute(
        &mut self,
        statement: Statement<'_>,
        rows: &[Vec<Value>],
    ) -> Result<u64, StoreError> {
        let fail = |e: postgres::Error| failed(Dialect::Postgres, statement, &e);
        let prepared = self.0.prepare(&numbered(statement.sql)).map_err(fail)?;
        let mut changed = 0;
        for row in rows {
            changed += self.0.execute(&prepared, &as_params(row)).map_err(fail)?;
        }
        Ok(changed)
    }

    fn query(
        &mut self,
        statement: Statement<'_>,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let fail = |e: postgres::Error| failed(Dialect::Postgres, statement, &e);
        let rows = self
            .0
            .query(&numbered(statement.sql), &as_params(params))
            .map_err(fail)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| column(row, i).map_err(|e| failed(Dialect::Postgres, statement, &*e)))
                    .collect()
            })
            .collect()
    }
}

/// Parameters as the client takes them.
fn as_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

type BoxError = Box<dyn Error + Sync + Send>;

/// Column `i` of `row` as a plain value.
fn column(row: &postgres::Row, i: usize) -> Result<Value, BoxError> {
    let ty = row.columns()[i].type_();
    let value = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Value::Real(v.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        _ => return Err(format!("column {i} has the unsupported type {ty}").into()),
    };
    Ok(value.unwrap_or(Value::Null))
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(v) => v.to_sql_checked(ty, out),
            Self::Real(v) => v.to_sql_checked(ty, out),
            // PostgreSQL's text cannot hold NUL, which would fail the whole batch at every
            // retry: it is replaced, as a bad UTF-8 byte would be.
            Self::Text(v) if v.contains('\0') => {
                v.replace('\0', "\u{FFFD}").to_sql_checked(ty, out)
            }
            Self::Text(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <f64 as ToSql>::accepts(ty) || <String as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ? AND c < ? LIMIT ?"),
            "SELECT a FROM t WHERE b = $1 AND c < $2 LIMIT $3"
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let Err(e) = connect("postgresql://u:hunter2@h:notaport/d") else {
            panic!("a bad port parsed");
        };
        let e = e.to_string();
        assert!(
            e.contains("invalid PostgreSQL URL") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
