//! `POST /v1/embeddings` and `GET /v1/models`: the OpenAI embeddings API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{self, AppState, Stats};
use crate::chunks::{self, ChunkOf};
use crate::dtype::{Encoding, Stored};
use crate::error::{ApiError, Flavor};
use crate::inputs::{parse_input, RawInput};
use crate::{ClientGone, RequestId};

/// OpenAI's embeddings request, with our extensions.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OpenAiEmbeddingsRequest)]
pub(crate) struct Request {
    input: Option<RawInput>,
    /// Which model (with several served; any name with one).
    #[allow(dead_code)]
    model: Option<String>,
    /// A Matryoshka size: 768, 512, 256 or 128.
    #[schema(value_type = Option<u32>)]
    dimensions: Option<Value>,
    /// `float` (default) or `base64` (the stored bytes).
    encoding_format: Option<String>,
    /// Ignored.
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    user: Option<Value>,
    /// Extensions: one of the model's prompt names, or literal prompt text.
    prompt_name: Option<String>,
    prompt: Option<String>,
    /// Extension: `false` refuses texts past the context instead of truncating them.
    truncate: Option<bool>,
    /// Extension: the stored dtype (float32, float16, int8, uint8, binary, ubinary).
    dtype: Option<String>,
    /// Extension: split each text into windows of this many tokens (one item per window,
    /// with `chunk`, `start` and `end`; `index` is the input's).
    chunk_tokens: Option<usize>,
    chunk_overlap: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Item {
    object: &'static str,
    index: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    chunk: Option<ChunkOf>,
    embedding: Stored,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// Serialized straight from f32 (shortest round-trip digits), not through `serde_json::Value`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiEmbeddingsResponse)]
pub(crate) struct Body<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

async fn handle(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<(Response, Stats), ApiError> {
    let request: Request = api::parse_body(body, &state.limits)?;
    let dimensions = match request.dimensions {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(|d| d as usize),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_dimensions",
                format!("`dimensions` must be an integer, not {other}"),
            ))
        }
    };
    let dim = api::check_dimensions(dimensions, &state.model)?;
    let base64 = api::base64_format(request.encoding_format.as_deref())?;
    let encoding = Encoding::parse(state, request.dtype.as_deref(), base64, dim)?;
    let prompt = api::prompt(state, request.prompt_name.as_deref(), request.prompt.as_deref())?;
    let truncation = match request.truncate {
        Some(false) => Truncation::Error,
        _ => Truncation::Right,
    };
    let chunk = chunks::options(request.chunk_tokens, request.chunk_overlap)?;
    let inputs = parse_input("input", request.input, state.limits.max_inputs)?;
    let (seqs, from) = match chunk {
        None => (inputs.into_sequences(state, prompt, truncation).await?, Vec::new()),
        Some(c) => {
            let texts = inputs.texts("input", "chunking")?;
            chunks::sequences(state, texts, api::input_options(state, prompt, truncation), c).await?
        }
    };
    let (done, stats) = api::embed(state, seqs).await?;
    let data = done
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let chunk = from.get(index).copied();
            Ok(Item {
                object: "embedding",
                index: chunk.map_or(index, |c| c.input),
                chunk,
                embedding: encoding.store(state, api::cut(v, dim, true))?,
            })
        })
        .collect::<Result<Vec<Item>, ApiError>>()?;
    let body = Body {
        object: "list",
        data,
        model: &state.model_name,
        usage: Usage {
            prompt_tokens: stats.tokens,
            total_tokens: stats.tokens,
        },
    };
    Ok((Json(body).into_response(), stats))
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "OpenAI", request_body = Request,
    responses((status = 200, body = Body), (status = 400, description = "a bad field, named"),
        (status = 404, description = "an unknown model"), (status = 413, description = "past a limit"),
        (status = 429, description = "the queue is full"), (status = 503, description = "timeout or shutting down")))]
pub async fn embeddings(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/v1/embeddings",
        Flavor::OpenAi,
        &id,
        gone,
        handle(&state, body),
    )
    .await
}

#[utoipa::path(get, path = "/v1/models", tag = "OpenAI", responses((status = 200, description = "the served models")))]
pub async fn models(State(models): State<Arc<crate::models::Models>>) -> Response {
    let data: Vec<_> = models
        .states
        .iter()
        .map(|s| json!({"id": s.model_name, "object": "model", "created": 0, "owned_by": "gemma-graph"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}
