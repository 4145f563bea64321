//! Ollama's embedding API: `POST /api/embed` (`model`, `input`, `truncate`, `dimensions`,
//! `options`, `keep_alive`) and the older `POST /api/embeddings` (`model`, `prompt`), so apps
//! that speak only Ollama use this server. Errors are Ollama's `{"error": message}`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::{self, AppState, Stats};
use crate::error::{ApiError, Flavor};
use crate::inputs::{parse_input, RawInput};
use crate::{ClientGone, RequestId};

/// Ollama's embed request.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OllamaEmbedRequest)]
pub(crate) struct EmbedRequest {
    /// With one model served, any name (as `/v1/embeddings` takes it).
    #[allow(dead_code)]
    model: Option<String>,
    input: Option<RawInput>,
    /// Ollama's default: texts past the context are truncated; `false` refuses them.
    truncate: Option<bool>,
    dimensions: Option<usize>,
    /// Ollama's runner options (`num_ctx`, `num_thread`, ...): they configure llama.cpp, not
    /// this server, so they are ignored; the log line names them.
    #[schema(value_type = Option<Object>)]
    options: Option<Map<String, Value>>,
    /// Ignored.
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    keep_alive: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OllamaEmbedResponse)]
pub(crate) struct EmbedResponse<'a> {
    model: &'a str,
    embeddings: Vec<Vec<f32>>,
    /// Nanoseconds, as Ollama reports them.
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: usize,
}

fn note_ignored(options: Option<&Map<String, Value>>) {
    if let Some(o) = options.filter(|o| !o.is_empty()) {
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        tracing::info!(options = %keys.join(","), "ollama options ignored (they configure llama.cpp's runner)");
    }
}

async fn embed_request(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<(Response, Stats), ApiError> {
    // Ollama's `total_duration`: from the request's body read to its answer ready.
    let started = Instant::now();
    let request: EmbedRequest = api::parse_body(body, &state.limits)?;
    note_ignored(request.options.as_ref());
    let dim = api::check_dimensions(request.dimensions, &state.model)?;
    let truncation = match request.truncate {
        Some(false) => Truncation::Error,
        _ => Truncation::Right,
    };
    let seqs = parse_input("input", request.input, state.limits.max_inputs)?
        .into_sequences(state, api::prompt(state, None, None)?, truncation)
        .await?;
    let (done, stats) = api::embed(state, seqs).await?;
    // Ollama returns unit vectors, re-normalized after `dimensions` cuts them.
    let embeddings = done.vectors.iter().map(|v| api::cut(v, dim, true)).collect();
    let body = EmbedResponse {
        model: &state.model_name,
        embeddings,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: 0,
        prompt_eval_count: stats.tokens,
    };
    Ok((Json(body).into_response(), stats))
}

#[utoipa::path(post, path = "/api/embed", tag = "Ollama", request_body = EmbedRequest,
    responses((status = 200, body = EmbedResponse), (status = 400, description = "a bad field, named")))]
pub async fn embed(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/api/embed",
        Flavor::Ollama,
        &id,
        gone,
        embed_request(&state, body),
    )
    .await
}

/// Ollama's older embeddings request.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OllamaEmbeddingsRequest)]
pub(crate) struct LegacyRequest {
    #[allow(dead_code)]
    model: Option<String>,
    prompt: Option<String>,
    #[schema(value_type = Option<Object>)]
    options: Option<Map<String, Value>>,
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    keep_alive: Option<Value>,
}

async fn embeddings_request(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, Stats), ApiError> {
    let request: LegacyRequest = api::parse_body(body, &state.limits)?;
    note_ignored(request.options.as_ref());
    let Some(prompt) = request.prompt else {
        return Err(ApiError::invalid(
            "missing_prompt",
            "`prompt` (the text to embed) is required",
        ));
    };
    let seqs = parse_input("prompt", Some(RawInput::Text(prompt)), state.limits.max_inputs)?
        .into_sequences(state, api::prompt(state, None, None)?, Truncation::Right)
        .await?;
    let (done, stats) = api::embed(state, seqs).await?;
    let embedding = done.vectors.into_iter().next().unwrap_or_default();
    Ok((
        Json(serde_json::json!({ "embedding": embedding })).into_response(),
        stats,
    ))
}

#[utoipa::path(post, path = "/api/embeddings", tag = "Ollama", request_body = LegacyRequest,
    responses((status = 200, description = "`{\"embedding\": [...]}`"), (status = 400, description = "no prompt")))]
pub async fn embeddings(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/api/embeddings",
        Flavor::Ollama,
        &id,
        gone,
        embeddings_request(&state, body),
    )
    .await
}
