//! `gemma-graph serve`: an HTTP server speaking the OpenAI embeddings API (`/v1/embeddings`,
//! `/v1/models`) and Hugging Face TEI's (`/embed`, `/tokenize`, `/info`), with `/health` and
//! Prometheus `/metrics`.
//!
//! Requests are parsed and tokenized on the async runtime (tokenization on its blocking pool);
//! the model runs on its own threads behind one queue ([`batcher`]), which packs texts from
//! every request into token-budget batches. Bounded queue → 429 with `Retry-After`; body,
//! input-count and context limits → 413/400 naming the limit; errors are always JSON.

pub mod api;
mod auth;
pub mod batcher;
mod body;
mod cache;
mod chunks;
mod config;
mod conn;
mod dtype;
mod embed_all;
pub mod error;
mod grpc;
mod heads;
mod host;
mod inputs;
pub mod metrics;
pub mod models;
mod ollama;
mod openai;
mod openapi;
mod predict;
mod status;
mod tei;
mod tei_text;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gemma_graph::Model;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::AppState;
use crate::batcher::{BatchConfig, Batcher};
use crate::error::{flavor_of, ApiError};
use crate::metrics::Metrics;
pub use config::{default_max_connections, fixed_mmap_threshold, HeadSpec, Limits, RequestId, ServeConfig};
pub use conn::ClientGone;

/// A bound, running server: its address, and the queue to shut down.
pub struct Server {
    listener: TcpListener,
    app: Router,
    models: Arc<models::Models>,
    /// Set when shutdown starts: requests still sending a body are answered 503.
    stopping: watch::Sender<bool>,
    /// `--grpc-port`: the gRPC listener, and the API key its calls need.
    grpc: Option<(TcpListener, Option<String>)>,
}

impl Server {
    /// Check the configuration against the model, start the model thread (warm-up first) and
    /// bind `addr` (port 0: any free port). The model is called `config.model_name`.
    pub async fn bind(model: Arc<Model>, config: ServeConfig, addr: SocketAddr) -> std::io::Result<Server> {
        let name = config.model_name.clone();
        Server::bind_models(vec![(name, model)], config, addr).await
    }

    /// As [`Server::bind`], with several models, each with its own queue and model thread; a
    /// request picks one by name ([`models`]), the first when it names none.
    pub async fn bind_models(
        models: Vec<(String, Arc<Model>)>,
        config: ServeConfig,
        addr: SocketAddr,
    ) -> std::io::Result<Server> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if models.is_empty() {
            return Err(invalid("no model to serve".into()));
        }
        for (i, (name, _)) in models.iter().enumerate() {
            if name.is_empty() || models[..i].iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("model names must be distinct and not empty: {name:?}")));
            }
        }
        let limits = config.limits.clone();
        if limits.max_connections == Some(0) {
            return Err(invalid("--max-connections must be at least 1".into()));
        }
        if limits.body_timeout.is_zero() || limits.header_timeout.is_zero() || limits.request_timeout.is_zero() {
            return Err(invalid("timeouts must be positive".into()));
        }
        if let Some(name) = &config.default_prompt_name {
            if gemma_graph::Prompt::Name(name.clone()).text().is_err() {
                let names: Vec<&str> = gemma_graph::PROMPTS.iter().map(|(n, _)| *n).collect();
                return Err(invalid(format!(
                    "--default-prompt-name {name:?} is not one of the model's prompts: {}",
                    names.join(", ")
                )));
            }
        }
        let states = models
            .into_iter()
            .enumerate()
            .map(|(i, (name, model))| {
                // `/embed_all`: the same file with a per-token head, its own queue, no cache.
                let token_states = match config.token_states.get(i) {
                    Some(m) => Some(start_model(
                        format!("{name} (token states)"),
                        Arc::clone(m),
                        &config,
                        None,
                        false,
                    )?),
                    None => None,
                };
                start_model(name, model, &config, token_states, true)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let models = Arc::new(models::Models { states });
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let grpc = match config.grpc_addr {
            Some(a) => Some((TcpListener::bind(a).await?, config.api_key.clone())),
            None => None,
        };
        let (stopping, stopping_rx) = watch::channel(false);
        let app = router(Arc::clone(&models), &config, local, stopping_rx)?;
        Ok(Server {
            listener,
            app,
            models,
            stopping,
            grpc,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The gRPC listener's address, when serving gRPC.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serve until `shutdown` resolves; then stop accepting, answer requests still sending a
    /// body with 503, finish the requests in flight (their queued texts included), and stop
    /// the model thread.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let models = self.models;
        let state = Arc::clone(models.first());
        let admission = conn::Admission {
            max_connections: state.limits.max_connections.unwrap_or_else(default_max_connections),
            header_timeout: state.limits.header_timeout,
        };
        // One shutdown for both protocols: each waits for the signal, then finishes its calls.
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let grpc = self.grpc.map(|(listener, key)| {
            tokio::spawn(grpc::serve(
                Arc::clone(&models),
                key,
                listener,
                stopped(stop_rx.clone()),
            ))
        });
        let http = conn::serve(self.listener, self.app, admission, self.stopping, stopped(stop_rx)).await;
        if let Some(task) = grpc {
            task.await.map_err(std::io::Error::other)??;
        }
        http?;
        tokio::task::spawn_blocking(move || {
            for state in &models.states {
                state.batcher.shutdown();
                if let Some(t) = &state.token_states {
                    t.batcher.shutdown();
                }
            }
        })
        .await
        .map_err(std::io::Error::other)
    }
}

/// One model's queue and state: its limits checked, its model thread started (warm-up first).
fn start_model(
    name: String,
    model: Arc<Model>,
    config: &ServeConfig,
    token_states: Option<Arc<AppState>>,
    main: bool,
) -> std::io::Result<Arc<AppState>> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
    let context = model.config().context_length;
    let limits = config.limits.clone();
    let batch = limits.max_batch_tokens.min(model.max_batch_tokens());
    if batch < context {
        return Err(invalid(format!(
            "--max-batch-tokens {batch} is below the model's context of {context} tokens: a text of full length could never run{}",
            if model.max_batch_tokens() < limits.max_batch_tokens {
                " (the model was loaded for fewer tokens per batch)"
            } else {
                ""
            }
        )));
    }
    let metrics = Arc::new(Metrics::default());
    let warm = Arc::new(OnceLock::new());
    let flag = Arc::clone(&warm);
    let batcher = Batcher::start(
        Arc::clone(&model),
        BatchConfig {
            max_batch_tokens: limits.max_batch_tokens,
            max_wait: limits.max_wait,
            max_queue_tokens: limits.max_queue_tokens,
        },
        Arc::clone(&metrics),
        move |outcome| {
            let _ = flag.set(outcome);
        },
    )?;
    // Text being tokenized at once, across requests: two of the longest texts accepted
    // (the tokenizer holds ~30 bytes per byte of the text it is working on).
    let tokenizing_kib = (2 * gemma_graph::MAX_TEXT_BYTES) / 1024;
    let heads = match main {
        true => heads::heads(&model, &config.heads).map_err(|e| invalid(format!("model {name:?}: {e}")))?,
        false => Vec::new(),
    };
    Ok(Arc::new(AppState {
        heads,
        token_states,
        model,
        model_name: name,
        encode: config.encode,
        batcher,
        metrics,
        limits,
        warm,
        tokenizing: Arc::new(tokio::sync::Semaphore::new(tokenizing_kib)),
        tokenizing_kib,
        ranges: config.calibration.clone(),
        default_prompt: config.default_prompt_name.clone(),
        cache: (main && config.cache_entries > 0).then(|| cache::VectorCache::new(config.cache_entries)),
    }))
}

/// Every route, for metrics labels (anything else is counted as `other`); /openapi.json
/// describes each but `/embeddings`, an alias of `/v1/embeddings` (tests/extensions.rs).
pub const ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/embeddings",
    "/v1/models",
    "/embed",
    "/api/embed",
    "/api/embeddings",
    "/tokenize",
    "/decode",
    "/similarity",
    "/predict",
    "/embed_all",
    "/info",
    "/health",
    "/metrics",
    "/openapi.json",
];

fn route_label(path: &str) -> &'static str {
    ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other")
}

fn router(
    models: Arc<models::Models>,
    config: &ServeConfig,
    local: SocketAddr,
    stopping: watch::Receiver<bool>,
) -> std::io::Result<Router> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
    if config.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(invalid(
            "the API key is empty: give a key, or none to serve without authentication".into(),
        ));
    }
    let hosts = Arc::new(host::Rule::new(&config.allowed_hosts, local).map_err(invalid)?);
    let state = models.first();
    let body = Arc::new(body::BodyRules {
        max_bytes: state.limits.max_body_bytes,
        timeout: state.limits.body_timeout,
        stopping,
    });
    // Refusals before a model is chosen are counted under the first model.
    let metrics = Arc::clone(&state.metrics);
    let mut app = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings))
        .route("/embed", post(tei::embed))
        .route("/tokenize", post(tei::tokenize))
        .route("/decode", post(tei_text::decode))
        .route("/similarity", post(tei_text::similarity))
        .route("/predict", post(predict::predict))
        .route("/embed_all", post(embed_all::embed_all))
        .route("/info", get(tei::info))
        .route("/health", get(status::health))
        .route("/metrics", get(status::metrics_text))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // `body.rs` has read and bounded the body; this only lifts axum's 2 MB default.
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&models), models::choose))
        .layer(middleware::from_fn_with_state(body, body::read_body))
        .layer(middleware::from_fn(require_json))
        .layer(middleware::from_fn_with_state(
            Arc::new(config.api_key.clone()),
            authorize,
        ))
        .layer(middleware::from_fn_with_state(hosts, host::check))
        .layer(middleware::from_fn_with_state(metrics, observe))
        .with_state(models);
    if !config.cors_allow_origins.is_empty() {
        let invalid = |why: String| invalid(format!("--cors-allow-origin: {why}"));
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

async fn authorize(State(key): State<Arc<Option<String>>>, request: Request, next: Next) -> Response {
    let Some(key) = key.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/health" || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    match auth::check_key(
        key,
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(()) => next.run(request).await,
        Err(message) => {
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

/// The outermost layer: gives the request its id (the client's `x-request-id` if sane), tells
/// the hang-up watch whether it may probe (HTTP/1.1), and logs and counts every request a
/// route did not: refusals by the layers, and requests whose connection closed before any
/// response (the future is dropped: logged as 499 by the guard).
async fn observe(State(metrics): State<Arc<Metrics>>, mut request: Request, next: Next) -> Response {
    let id = auth::request_id(request.headers().get("x-request-id").and_then(|v| v.to_str().ok()));
    let http11 = request.version() == axum::http::Version::HTTP_11;
    if let Some(gone) = request.extensions_mut().get_mut::<ClientGone>() {
        gone.may_probe = http11;
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut guard = Unanswered {
        metrics,
        id,
        route: route_label(request.uri().path()),
        started: Instant::now(),
        armed: true,
    };
    let mut response = next.run(request).await;
    guard.armed = false;
    if response.extensions().get::<api::Logged>().is_none() {
        let status = response.status().as_u16();
        guard
            .metrics
            .request(guard.route, status, guard.started.elapsed().as_secs_f64());
        let error = response
            .extensions()
            .get::<error::Message>()
            .map_or("", |m| m.0.as_str());
        if status >= 400 {
            tracing::info!(request_id = %guard.id, route = guard.route, status, error, "refused");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&guard.id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Logs a request whose future was dropped before it had a response: its client closed the
/// connection (hyper stops serving it).
struct Unanswered {
    metrics: Arc<Metrics>,
    id: String,
    route: &'static str,
    started: Instant,
    armed: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.armed {
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.request(self.route, 499, seconds);
            tracing::info!(
                request_id = %self.id,
                route = self.route,
                status = 499,
                total_ms = format_args!("{:.2}", seconds * 1e3),
                error = "the connection closed before the response",
                "request"
            );
        }
    }
}
