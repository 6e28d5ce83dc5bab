//! What can go wrong with the measurement database, as one error type: the message names the
//! backend, what the store was doing and what the database said, and never a password.

use std::path::PathBuf;

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder of the SQLite file cannot be created.
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The PostgreSQL URL does not parse.
    #[error("invalid PostgreSQL URL {url}: {message}")]
    Url {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database cannot be opened or reached.
    #[error("cannot open the database {target}: {message}")]
    Connect {
        /// The SQLite file, or the PostgreSQL URL with its password replaced by `***`.
        target: String,
        /// What failed, with its causes.
        message: String,
    },
    /// The database refused or failed an operation.
    #[error("{backend} failed {action}: {message}")]
    Database {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// What the store was doing, e.g. `writing counts`.
        action: &'static str,
        /// What the database said, with its causes.
        message: String,
    },
    /// A stored value cannot be read back.
    #[error("unreadable {what} in the database: {message}")]
    Corrupt {
        /// Which value, e.g. `speed histogram`.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The database was written by a newer build: its schema has versions this one lacks.
    #[error("the database schema is at version {found}, newer than this build's {known}")]
    NewerSchema {
        /// The highest version in the database.
        found: i64,
        /// The highest version this build knows.
        known: i64,
    },
    /// A query's arguments make no sense (e.g. a bin of zero seconds).
    #[error("invalid query: {0}")]
    InvalidQuery(&'static str),
}

/// An error and its causes on one line: `a: b: c`. Some drivers (PostgreSQL's) keep the useful
/// part in the causes and print only a category.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    // PostgreSQL puts its DETAIL and HINT on lines of their own.
    text.replace('\n', " ")
}
