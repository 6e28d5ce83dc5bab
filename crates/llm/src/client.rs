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

/// Provider error codes that mean the key itself is unusable (invalid, unpaid, forbidden),
/// whatever the HTTP status: never retried, and the key is disabled.
pub const KEY_REJECTED_CODES: [&str; 4] = [
    "InvalidApiKey",
    "invalid_api_key",
    "Arrearage",
    "AccessDenied",
];
/// Provider error codes that refuse this request for good (its content), the key being fine.
pub const REQUEST_REJECTED_CODES: [&str; 1] = ["DataInspectionFailed"];

/// What a failed call means: the one classification the client's retries, the key pool's
/// choices and the metrics all use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 429: the key or account is over its rate.
    RateLimited,
    /// 5xx: the provider is failing.
    ServerError,
    /// No answer in time.
    Timeout,
    /// The server could not be reached.
    Connect,
    /// 401, 403 or a [`KEY_REJECTED_CODES`] code: the key is unusable.
    KeyRejected,
    /// Any other refusal (400, [`REQUEST_REJECTED_CODES`]): this request will not pass.
    RequestRejected,
    /// The answer could not be read.
    Unreadable,
    /// No key could take the request.
    NoKey,
}

impl ErrorClass {
    /// Whether trying again (later, or with another key) may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::ServerError | Self::Timeout | Self::Connect
        )
    }

    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::KeyRejected | Self::RequestRejected => "rejected",
            Self::Timeout => "timeout",
            Self::Connect => "connect_error",
            Self::Unreadable => "parse_error",
            Self::NoKey => "no_key",
        }
    }
}

impl LlmError {
    /// The error's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Status { status, code, .. } => {
                let named = |codes: &[&str]| codes.iter().any(|c| code.contains(c));
                if matches!(status, 401 | 403) || named(&KEY_REJECTED_CODES) {
                    ErrorClass::KeyRejected
                } else if named(&REQUEST_REJECTED_CODES) {
                    ErrorClass::RequestRejected
                } else if *status == 429 {
                    ErrorClass::RateLimited
                } else if *status >= 500 {
                    ErrorClass::ServerError
                } else {
                    ErrorClass::RequestRejected
                }
            }
            Self::Timeout => ErrorClass::Timeout,
            Self::Connect(_) => ErrorClass::Connect,
            Self::Response(_) | Self::Parse(_) => ErrorClass::Unreadable,
            Self::NoKey(_) => ErrorClass::NoKey,
        }
    }

    /// Whether trying again (later, or with another key) may succeed.
    pub fn retryable(&self) -> bool {
        self.class().retryable()
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        self.class().label()
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

/// Something that answers chat-completions requests, retries included: the API-key pool in the
/// service, a scripted fake in tests. The per-camera advisor calls through it.
pub trait Completer: Send + Sync + std::fmt::Debug {
    /// Sends `body` and returns the answer.
    fn complete<'a>(
        &'a self,
        body: &'a Value,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Completion, LlmError>> + Send + 'a>,
    >;

    /// Counts what became of an answer once read (`success`, `parse_error`).
    fn record(&self, outcome: &'static str);
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
        retry_calls(self.max_retry, |_| self.attempt(body)).await
    }
}

/// The retries of one call: retryable failures (see [`ErrorClass`]) again after
/// [`RETRY_BASE`], doubling; the completion says how many attempts it took.
pub async fn retry_calls<Fut>(
    max_retry: u32,
    attempt: impl FnMut(u32) -> Fut,
) -> Result<Completion, LlmError>
where
    Fut: std::future::Future<Output = Result<Completion, LlmError>>,
{
    let done = retry::retry(
        max_retry,
        retry::Backoff::new(RETRY_BASE, RETRY_BASE * 64),
        None,
        LlmError::retryable,
        |e, attempt| tracing::debug!(error = %e, attempt, "LLM call failed, retrying"),
        attempt,
    )
    .await?;
    Ok(Completion {
        attempts: done.attempts,
        ..done.value
    })
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
