//! The HTTP side: the router (live page, health, cameras and their scenes, metrics, `/ws`),
//! the `{code,msg,data}` envelope for every JSON answer including 404 and 405, and CORS.

pub mod auth;
pub mod error;
pub mod health;
pub mod limits;
pub mod measure;
pub mod scene;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use camera::hub::CameraHub;

use crate::config::SecurityConfig;
use crate::sinks::LlmSink;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The cameras.
    pub hub: Arc<CameraHub>,
    /// Their scenes.
    pub scenes: Arc<crate::scenes::SceneBook>,
    /// Start time, for uptime.
    pub started: Instant,
    /// Whether the LLM is in use.
    pub llm_enabled: bool,
    /// Server ping interval on `/ws`.
    pub heartbeat: Duration,
    /// Next connection id.
    pub next_conn: Arc<AtomicU64>,
    /// Cancelled at shutdown: WebSocket sessions end.
    pub shutdown: CancellationToken,
    /// Which sources may be opened (`check_camera`).
    pub policy: SecurityConfig,
    /// `standalone` or `streaming`.
    pub mode: &'static str,
    /// What `/metrics` shows.
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// The families the sessions update.
    pub stats: Arc<crate::metrics::Metrics>,
    /// The LLM beside each camera (its counters show in `/api/cameras`), when on.
    pub llm: Option<Arc<LlmSink>>,
    /// The measurement database, when `measurement.enabled`.
    pub measure: Option<measure::MeasureApi>,
    /// Its writer (health shows whether it keeps up).
    pub database: Option<store::WriterHandle>,
    /// Streaming mode's Kafka and Redis (health and readiness), when streaming is on.
    pub dependencies: Option<Arc<streaming::dependencies::Dependencies>>,
    /// WebSocket connections at once.
    pub connections: Arc<limits::ConnectionLimiter>,
    /// Messages a WebSocket client may send per second.
    pub ws_messages_per_second: u32,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// `check_camera` probes running on the whole service (at most [`ws::MAX_CHECKS`]).
    pub checks: Arc<tokio::sync::Semaphore>,
    /// Where sessions spawn their writer, forwarders and probes, so that shutdown waits for
    /// them.
    pub tasks: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Longest time an HTTP request may take (the WebSocket upgrade included, not the session).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body accepted (a scene is a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// WebSocket limits need the peer's address.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let protected = Router::new()
        .route("/api/cameras", get(health::cameras))
        .route(
            "/api/cameras/{id}/scene",
            get(scene::get_scene)
                .put(scene::put_scene)
                .delete(scene::delete_scene),
        )
        .route("/api/cameras/{id}/counts", get(measure::counts))
        .route("/api/cameras/{id}/movements", get(measure::movements))
        .route("/api/cameras/{id}/speeds", get(measure::speeds))
        .route("/api/events", get(measure::events))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/", get(web::index))
        .route("/static/{file}", get(web::static_file))
        .route("/api/health/health_check", get(health::health_check))
        .route("/api/health/ready", get(health::ready))
        .route("/metrics", get(metrics))
        .route("/ws", get(ws::upgrade))
        .merge(protected)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(deadline))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors(cors_origins))
        .with_state(state)
}

/// Answers 408 in the envelope when a request takes longer than [`REQUEST_TIMEOUT`].
async fn deadline(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::error(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request took too long",
        ),
    }
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it (Prometheus does), else the classic
/// Prometheus text format.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    use crate::metrics::{OPENMETRICS, PROMETHEUS_TEXT, render, to_prometheus_text};
    let openmetrics = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = render(&state.metrics);
    if openmetrics {
        ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], text)
    } else {
        (
            [(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            to_prometheus_text(&text),
        )
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([HeaderName::from_static(measure::BIN_SECONDS)]);
    if origins.is_empty() || origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    layer.allow_origin(AllowOrigin::list(list))
}
