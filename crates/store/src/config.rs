//! Where the database is and how long it keeps data, and the one way a PostgreSQL URL is shown
//! in messages: with its password replaced by `***`.

use std::path::PathBuf;

/// Which database to use.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (its folder is created).
    Sqlite(PathBuf),
    /// A PostgreSQL server: a `postgresql://user:password@host:port/db` URL or a `key=value`
    /// connection string. Without TLS.
    Postgres(String),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

impl Backend {
    /// The database as shown in messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => redact_url(url),
        }
    }
}

/// The store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The database.
    pub backend: Backend,
    /// Bins and events older than this many days are deleted by
    /// [`Store::prune`](crate::Store::prune); 0 keeps everything.
    pub retention_days: u32,
}

/// A PostgreSQL URL or connection string with its password replaced by `***`, wherever it is:
/// `user:password@`, `?password=` or `password=` in `key=value` form.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        let words: Vec<String> = url.split_whitespace().map(redact_pair).collect();
        return words.join(" ");
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query.split('&').map(redact_pair).collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `password=secret` as `password=***`; anything else as it is.
fn redact_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((key, _)) if key.trim().eq_ignore_ascii_case("password") => format!("{key}=***"),
        _ => pair.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgresql://traffic:s3cr@t@db:5432/traffic",
                "postgresql://traffic:***@db:5432/traffic",
            ),
            (
                "postgres://u:pw@h/d?sslmode=disable&password=pw2",
                "postgres://u:***@h/d?sslmode=disable&password=***",
            ),
            ("postgresql://u@h/d", "postgresql://u@h/d"),
            ("postgresql://h", "postgresql://h"),
            (
                "host=db user=u password=pw dbname=t",
                "host=db user=u password=*** dbname=t",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let debug = format!("{:?}", Backend::Postgres("postgresql://u:pw@h/d".into()));
        assert!(!debug.contains("pw@"), "{debug}");
    }
}
