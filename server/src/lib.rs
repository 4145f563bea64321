//! `gemma-graph serve`: an HTTP server speaking the OpenAI embeddings API (`/v1/embeddings`,
//! `/v1/models`) and Hugging Face TEI's (`/embed`, `/tokenize`, `/info`), with `/health` and
//! Prometheus `/metrics`.
//!
//! Requests are parsed and tokenized on the async runtime (tokenization on its blocking pool);
//! the model runs on its own threads behind one queue ([`batcher`]), which packs texts from
//! every request into token-budget batches. Bounded queue → 429 with `Retry-After`; body,
//! input-count and context limits → 413/400 naming the limit; errors are always JSON.

pub mod api;
pub mod batcher;
mod config;
mod conn;
pub mod error;
mod inputs;
pub mod metrics;
mod openai;
mod tei;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gemma_graph::Model;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::AppState;
use crate::batcher::{BatchConfig, Batcher};
use crate::error::{ApiError, Flavor};
use crate::metrics::Metrics;
pub use config::{Limits, RequestId, ServeConfig};
pub use conn::ClientGone;

/// A bound, running server: its address, and the queue to shut down.
pub struct Server {
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
}

impl Server {
    /// Start the model thread (warm-up first) and bind `addr` (port 0: any free port).
    pub async fn bind(model: Arc<Model>, config: ServeConfig, addr: SocketAddr) -> std::io::Result<Server> {
        let metrics = Arc::new(Metrics::default());
        let warm = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&warm);
        let limits = config.limits.clone();
        let batcher = Batcher::start(
            Arc::clone(&model),
            BatchConfig {
                max_batch_tokens: limits.max_batch_tokens,
                max_wait: limits.max_wait,
                max_queue_tokens: limits.max_queue_tokens,
            },
            Arc::clone(&metrics),
            move || flag.store(true, Ordering::Release),
        )?;
        let state = Arc::new(AppState {
            model,
            model_name: config.model_name.clone(),
            encode: config.encode,
            batcher,
            metrics,
            limits,
            warm,
        });
        let app = router(Arc::clone(&state), &config)?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, app, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves; then stop accepting, finish the requests in flight
    /// (their queued texts included), and stop the model thread.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state;
        conn::serve(self.listener, self.app, shutdown).await?;
        tokio::task::spawn_blocking(move || state.batcher.shutdown())
            .await
            .map_err(std::io::Error::other)
    }
}

fn router(state: Arc<AppState>, config: &ServeConfig) -> std::io::Result<Router> {
    let mut app = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/embed", post(tei::embed))
        .route("/tokenize", post(tei::tokenize))
        .route("/info", get(tei::info))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::from_fn(require_json))
        .layer(middleware::from_fn_with_state(
            Arc::new(config.api_key.clone()),
            authorize,
        ))
        .layer(middleware::from_fn(request_id))
        .with_state(state);
    if config.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the API key is empty: give a key, or none to serve without authentication",
        ));
    }
    if !config.cors_allow_origins.is_empty() {
        let invalid =
            |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("--cors-allow-origin: {why}"));
        let any = config.cors_allow_origins.iter().any(|o| o == "*");
        let allow = if any && config.cors_allow_origins.len() > 1 {
            return Err(invalid("`*` allows every origin; give it alone or list origins".into()));
        } else if any {
            AllowOrigin::any()
        } else {
            let origins = config
                .cors_allow_origins
                .iter()
                .map(|o| HeaderValue::from_str(o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?;
            AllowOrigin::list(origins)
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    Ok(app)
}

/// A POST body must be declared JSON (`application/json`, parameters allowed): a web page can
/// make a browser send `text/plain` (or form types, or no type) to any origin without a CORS
/// preflight, so accepting those would let any page a user visits call the server. Runs after
/// the API key check, so a request without a key still gets 401.
async fn require_json(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let json = declared.as_deref().is_some_and(|t| {
        let essence = t.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if json {
        return next.run(request).await;
    }
    let got = declared.map_or_else(|| "none".to_string(), |t| format!("`{t}`"));
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        "unsupported_media_type",
        format!("request body: Content-Type must be application/json (got {got})"),
    )
    .with_flavor(flavor_of(request.uri().path()))
    .into_response()
}

fn flavor_of(path: &str) -> Flavor {
    if path.starts_with("/v1") {
        Flavor::OpenAi
    } else {
        Flavor::Tei
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.is_warm() {
        (StatusCode::OK, "ok").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "warming_up",
            "the model is warming up",
        )
        .with_flavor(Flavor::Tei)
        .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_string();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!("no route {path}"),
    )
    .with_flavor(flavor_of(&path))
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path().to_string();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} is not allowed on {path}", request.method()),
    )
    .with_flavor(flavor_of(&path))
    .into_response()
}

/// Equal in time independent of where the strings differ (their lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials of an `Authorization: Bearer <token>` header value; the scheme is matched
/// case-insensitively, as RFC 7235 says (`bearer KEY` is as valid as `Bearer KEY`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authorize(State(key): State<Arc<Option<String>>>, request: Request, next: Next) -> Response {
    let Some(key) = key.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/health" || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), key.as_bytes()) => next.run(request).await,
        given => {
            let message = if given.is_some() {
                "invalid API key"
            } else {
                "missing API key: send `Authorization: Bearer <key>`"
            };
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                message,
            )
            .with_flavor(flavor_of(path))
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("gg-{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
