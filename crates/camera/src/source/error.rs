//! Why a source failed, and error texts made fit for `camera_status`.

/// Why a source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The URL cannot be parsed.
    #[error("invalid camera URL: {0}")]
    InvalidUrl(String),
    /// The scheme or host is refused by `security.allowed_source_*`.
    #[error("{0}")]
    NotAllowed(String),
    /// A scheme we cannot open.
    #[error("unsupported source: {0}")]
    Unsupported(String),
    /// Connection or RTSP negotiation failed.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The stream broke after it started.
    #[error("stream error: {0}")]
    Stream(String),
    /// A step did not finish in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The source ended (server closed the session, end of file).
    #[error("source ended")]
    Ended,
}

/// Longest error text a camera reports.
pub const MAX_ERROR_CHARS: usize = 200;

/// A library's error text made fit for `camera_status`: its first line, at most
/// [`MAX_ERROR_CHARS`] characters (a framing error from a garbage-spewing server comes with a hex
/// dump of what it sent).
pub fn brief(error: impl std::fmt::Display) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.strip_suffix("; buffered:").unwrap_or(line);
    match line.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_cut_to_their_first_line() {
        let dump = "DESCRIBE: framing error: byte 26; buffered:\n0000: 52 54 53 50\nconn: x";
        assert_eq!(brief(dump), "DESCRIBE: framing error: byte 26");
        let long = "x".repeat(500);
        assert_eq!(brief(&long).len(), MAX_ERROR_CHARS + 3);
        assert_eq!(brief("é".repeat(300)).chars().count(), MAX_ERROR_CHARS + 3);
    }
}
