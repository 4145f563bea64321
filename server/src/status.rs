//! `GET /health` and `GET /metrics`, over every served model.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Flavor};
use crate::metrics::Metrics;
use crate::models::Models;

#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "every model is warm"), (status = 503, description = "warming up, or the warm-up failed")))]
pub async fn health(State(models): State<Arc<Models>>) -> Response {
    // Healthy once every model is; otherwise the first one that is not says why.
    let every = models
        .states
        .iter()
        .flat_map(|s| std::iter::once(s).chain(&s.token_states));
    let Some(state) = every.into_iter().find(|s| !s.is_warm()) else {
        return (StatusCode::OK, "ok").into_response();
    };
    let (code, message) = match state.warm.get() {
        Some(Ok(())) => return (StatusCode::OK, "ok").into_response(),
        Some(Err(e)) => ("warm_up_failed", format!("the warm-up batch failed: {e}")),
        None => ("warming_up", "the model is warming up".to_string()),
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", code, message)
        .with_flavor(Flavor::Tei)
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "server", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics_text(State(models): State<Arc<Models>>) -> Response {
    let per_model: Vec<_> = models
        .states
        .iter()
        .map(|s| {
            let cache = s
                .cache
                .as_ref()
                .map(crate::cache::VectorCache::families)
                .unwrap_or_default();
            (s.model_name.as_str(), &*s.metrics, cache)
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Metrics::render(&per_model),
    )
        .into_response()
}
