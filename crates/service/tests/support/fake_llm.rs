//! A fake OpenAI-compatible chat-completions server on loopback, scripted per request: each
//! call takes the next [`Reply`] of the script (the last one repeats), waits its delay and
//! answers; a key can have a script of its own ([`FakeLlm::script_key`]). Every request is
//! recorded (arrival time, authorization, body) for assertions. [`FakeLlm::service`] starts the
//! service with it as its LLM.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::Service;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this assistant text (content as a string), after a delay.
    Text(String, Duration),
    /// 200 with the content as a list of text parts.
    Parts(Vec<String>),
    /// This status and raw body.
    Status(u16, String),
    /// 200 with a body that is not JSON.
    Garbage,
}

impl Reply {
    /// DashScope's rate-limit error.
    pub fn throttled() -> Self {
        Self::Status(
            429,
            r#"{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded, please try again later.","request_id":"f0e1"}"#.into(),
        )
    }

    /// An answer text at once.
    pub fn text(s: &str) -> Self {
        Self::Text(s.into(), Duration::ZERO)
    }
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// Its `Authorization` header.
    pub authorization: String,
    /// Its JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    by_key: HashMap<String, VecDeque<Reply>>,
    calls: Vec<Call>,
}

/// The next reply of a script; the last one repeats.
fn next(replies: &mut VecDeque<Reply>) -> Reply {
    if replies.len() > 1 {
        replies.pop_front().unwrap_or(Reply::Garbage)
    } else {
        replies.front().cloned().unwrap_or(Reply::Garbage)
    }
}

/// The running fake server.
pub struct FakeLlm {
    /// Its address.
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl FakeLlm {
    /// Starts on an ephemeral loopback port with a script.
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            ..Script::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .with_state(Arc::clone(&script));
        let addr = super::serve(app).await;
        Self { addr, script }
    }

    /// The base URL to configure (`.../v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Starts the service (`traffic-algo serve`) with this server as its LLM, API key `key`,
    /// and `extra` environment.
    pub fn service(&self, key: &str, extra: &[(&str, &str)]) -> Service {
        let base = self.base_url();
        let mut env = vec![
            ("ALGO_LLM_API_KEY", key),
            ("ALGO_LLM_BASE_URL", base.as_str()),
        ];
        env.extend_from_slice(extra);
        Service::start(&env)
    }

    /// Gives requests with `Bearer {key}` a script of their own.
    pub fn script_key(&self, key: &str, replies: Vec<Reply>) {
        let mut s = self.script.lock().unwrap();
        s.by_key.insert(key.to_string(), replies.into());
    }

    /// Requests so far.
    pub fn calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().calls.clone()
    }
}

async fn handle(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = {
        let mut s = script.lock().unwrap();
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let key = authorization.trim_start_matches("Bearer ").to_string();
        s.calls.push(Call {
            at: Instant::now(),
            authorization,
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
        match s.by_key.get_mut(&key) {
            Some(replies) => next(replies),
            None => next(&mut s.replies),
        }
    };
    let completion = |content: Value| {
        json!({
            "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop", "index": 0}],
            "object": "chat.completion",
            "model": "qwen-vl-plus",
            "id": "chatcmpl-fake",
            "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
        })
        .to_string()
    };
    match reply {
        Reply::Text(text, delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, completion(json!(text))).into_response()
        }
        Reply::Parts(parts) => {
            let parts: Vec<Value> = parts
                .iter()
                .map(|p| json!({"type": "text", "text": p}))
                .collect();
            (StatusCode::OK, completion(json!(parts))).into_response()
        }
        Reply::Status(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Reply::Garbage => (StatusCode::OK, "<html>not json</html>").into_response(),
    }
}
