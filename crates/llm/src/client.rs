//! The OpenAI-compatible chat-completions client: `POST {base_url}/chat/completions` with
//! `Authorization: Bearer`, a timeout per attempt, and retries with exponential backoff for
//! what may pass (429 rate limits, 5xx, timeouts, connection failures) but not for what will not
//! (400, 401, 403 and DashScope's `InvalidApiKey`, `Arrearage`, `DataInspectionFailed`). The
//! same client speaks to DashScope's compatible mode, vLLM, Ollama and llama.cpp's server.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::parse::{ParseError, message_text};
use crate::keys::ApiKey;

/// First retry delay; doubled per retry.
pub const RETRY_BASE: Duration = Duration::from_millis(500);

/// Installs the process-wide TLS crypto provider (ring) once; every HTTPS client needs it.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The server answered with an error status.
    #[error("HTTP {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The provider's error code (`Throttling.RateQuota`, `InvalidApiKey`, ...) or empty.
        code: String,
        /// The provider's message, shortened.
        message: String,
    },
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The server could not be reached or the connection broke.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The body is not a chat-completions response.
    #[error("bad response: {0}")]
    Response(String),
    /// The response has no message text.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// No API key could take the request.
    #[error("{0}")]
    NoKey(String),
}

impl LlmError {
    /// Whether trying again (later, or with another key) may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, code, .. } => {
                let permanent = [
                    "InvalidApiKey",
                    "Arrearage",
                    "DataInspectionFailed",
                    "AccessDenied",
                ];
                !permanent.iter().any(|p| code.contains(p)) && (*status == 429 || *status >= 500)
            }
            Self::Timeout | Self::Connect(_) => true,
            Self::Response(_) | Self::Parse(_) | Self::NoKey(_) => false,
        }
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status { status: 429, .. } => "rate_limited",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Status { .. } => "rejected",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect_error",
            Self::Response(_) | Self::Parse(_) => "parse_error",
            Self::NoKey(_) => "no_key",
        }
    }
}

/// The error code and message of an error body: OpenAI's `{"error": {"code", "message"}}` or
/// DashScope's `{"code", "message"}`.
pub fn error_details(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = if v["error"].is_object() {
        &v["error"]
    } else {
        &v
    };
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut message = text(&e["message"]);
    if message.is_empty() {
        message = body.chars().take(200).collect();
    }
    (text(&e["code"]), message.chars().take(300).collect())
}

/// A successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The assistant's text.
    pub text: String,
    /// The model that answered (as the server says, else as asked).
    pub model: String,
    /// Time of the successful attempt.
    pub latency: Duration,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Tokens used, as the server reports (`usage.total_tokens`; 0 when absent).
    pub tokens: u64,
    /// Id of the pool key that answered (empty outside a pool).
    pub key_id: String,
}

/// The client of one server and key.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
    api_key: ApiKey,
    max_retry: u32,
}

impl LlmClient {
    /// A client for `base_url` (ending before `/chat/completions`) with `timeout` per attempt.
    pub fn new(
        base_url: &str,
        api_key: ApiKey,
        timeout: Duration,
        max_retry: u32,
    ) -> Result<Self, LlmError> {
        install_tls();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Connect(e.to_string()))?;
        Ok(Self {
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            max_retry,
        })
    }

    /// The same server and settings with another key, sharing the connection pool.
    pub fn with_key(&self, api_key: ApiKey) -> Self {
        Self {
            api_key,
            ..self.clone()
        }
    }

    /// One attempt.
    pub async fn attempt(&self, body: &Value) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    LlmError::Timeout
                } else {
                    LlmError::Connect(e.to_string())
                }
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout
            } else {
                LlmError::Connect(e.to_string())
            }
        })?;
        if status >= 400 {
            let (code, message) = error_details(&text);
            return Err(LlmError::Status {
                status,
                code,
                message,
            });
        }
        let v: Value =
            serde_json::from_str(&text).map_err(|e| LlmError::Response(e.to_string()))?;
        let model = v["model"]
            .as_str()
            .or_else(|| body["model"].as_str())
            .unwrap_or_default()
            .to_string();
        Ok(Completion {
            text: message_text(&v)?,
            model,
            latency: started.elapsed(),
            attempts: 1,
            tokens: v["usage"]["total_tokens"].as_u64().unwrap_or(0),
            key_id: String::new(),
        })
    }

    /// Calls with up to `max_retry` retries of retryable failures, backing off 0.5 s, 1 s, ...
    pub async fn complete(&self, body: &Value) -> Result<Completion, LlmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(body).await {
                Ok(mut c) => {
                    c.attempts = attempt;
                    return Ok(c);
                }
                Err(e) if e.retryable() && attempt <= self.max_retry => {
                    tracing::debug!(error = %e, attempt, "LLM call failed, retrying");
                    tokio::time::sleep(RETRY_BASE * 2u32.pow(attempt - 1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_and_retry_classification() {
        let dashscope = r#"{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded, please try again later.","request_id":"1a2b"}"#;
        assert_eq!(
            error_details(dashscope),
            (
                "Throttling.RateQuota".into(),
                "Requests rate limit exceeded, please try again later.".into()
            )
        );
        let openai = r#"{"error":{"code":"invalid_api_key","message":"Incorrect API key provided.","type":"invalid_request_error"}}"#;
        assert_eq!(error_details(openai).0, "invalid_api_key");
        assert_eq!(
            error_details("<html>Bad Gateway</html>").1,
            "<html>Bad Gateway</html>"
        );
        let status = |status: u16, code: &str| LlmError::Status {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(status(429, "Throttling.RateQuota").retryable());
        assert!(status(500, "InternalError").retryable() && status(503, "").retryable());
        assert!(!status(401, "InvalidApiKey").retryable());
        assert!(!status(400, "DataInspectionFailed").retryable());
        assert!(!status(403, "").retryable() && !status(400, "").retryable());
        assert!(
            !status(500, "Arrearage").retryable(),
            "an unpaid account stays unpaid"
        );
        assert!(LlmError::Timeout.retryable());
        assert!(!LlmError::Parse(ParseError::NoContent).retryable());
        assert_eq!(status(429, "").kind(), "rate_limited");
    }
}
