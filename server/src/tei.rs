//! Hugging Face text-embeddings-inference routes: `POST /embed`, `POST /tokenize`,
//! `GET /info`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::Owned;
use crate::api::{self, AppState, Stats};
use crate::chunks::{self, ChunkOf};
use crate::dtype::{Encoding, Stored};
use crate::error::{ApiError, Flavor};
use crate::inputs::{parse_input, parse_texts, RawInput};
use crate::{ClientGone, RequestId};

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) enum Direction {
    Left,
    Right,
}

/// TEI's embed request, with our extensions.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TeiEmbedRequest)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbedRequest {
    /// Texts or token-id arrays (as TEI takes them).
    inputs: Option<RawInput>,
    normalize: Option<bool>,
    truncate: Option<bool>,
    truncation_direction: Option<Direction>,
    prompt_name: Option<String>,
    dimensions: Option<usize>,
    /// Extensions: the stored dtype (float32, float16, int8, uint8, binary, ubinary), and
    /// `"base64"` for the stored bytes instead of numbers.
    dtype: Option<String>,
    encoding_format: Option<String>,
    /// Extension: split each text into windows of this many tokens; the answer is, per input,
    /// its chunks `{chunk, start, end, embedding}`.
    chunk_tokens: Option<usize>,
    chunk_overlap: Option<usize>,
}

/// A chunk's vector with where it came from.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChunkVector {
    #[serde(flatten)]
    from: ChunkOf,
    embedding: Stored,
}

async fn embed_request(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<(Response, Stats), ApiError> {
    let request: EmbedRequest = api::parse_body(body, &state.limits)?;
    let inputs = parse_input("inputs", request.inputs, state.limits.max_inputs)?;
    let dim = api::check_dimensions(request.dimensions, &state.model)?;
    let base64 = api::base64_format(request.encoding_format.as_deref())?;
    let encoding = Encoding::parse(state, request.dtype.as_deref(), base64, dim)?;
    let prompt = api::prompt(state, request.prompt_name.as_deref(), None)?;
    let truncation = match (request.truncate, request.truncation_direction) {
        (Some(false), _) => Truncation::Error,
        (_, Some(Direction::Left)) => Truncation::Left,
        _ => Truncation::Right,
    };
    let chunk = chunks::options(request.chunk_tokens, request.chunk_overlap)?;
    let normalize = request.normalize.unwrap_or(true);
    let Some(chunk) = chunk else {
        let seqs = inputs.into_sequences(state, prompt, truncation).await?;
        let (done, stats) = api::embed(state, seqs).await?;
        let vectors = done
            .vectors
            .iter()
            .map(|v| encoding.store(state, api::cut(v, dim, normalize)))
            .collect::<Result<Vec<Stored>, ApiError>>()?;
        return Ok((Json(vectors).into_response(), stats));
    };
    let texts = inputs.texts("inputs", "chunking")?;
    let n = texts.len();
    let (seqs, from) = chunks::sequences(state, texts, api::input_options(state, prompt, truncation), chunk).await?;
    let (done, stats) = api::embed(state, seqs).await?;
    let mut per_input: Vec<Vec<ChunkVector>> = (0..n).map(|_| Vec::new()).collect();
    for (from, v) in from.into_iter().zip(&done.vectors) {
        per_input[from.input].push(ChunkVector {
            from,
            embedding: encoding.store(state, api::cut(v, dim, normalize))?,
        });
    }
    Ok((Json(per_input).into_response(), stats))
}

#[utoipa::path(post, path = "/embed", tag = "TEI", request_body = EmbedRequest,
    responses((status = 200, description = "a vector per input (with chunking: per input, its chunks)", body = Vec<Stored>),
        (status = 400, description = "a bad field, named"), (status = 413, description = "past a limit"),
        (status = 429, description = "the queue is full")))]
pub async fn embed(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(&state, "/embed", Flavor::Tei, &id, gone, embed_request(&state, body)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenizeRequest {
    inputs: Option<RawInput>,
    add_special_tokens: Option<bool>,
    prompt_name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Token {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

/// The tokens of each text (TEI's `/tokenize`, and gRPC's `Tokenize`): id, piece, special.
pub(crate) async fn tokens(
    state: &AppState,
    texts: Vec<String>,
    prompt_name: Option<&str>,
    add_special: bool,
) -> Result<Vec<Vec<Token>>, ApiError> {
    let prompt = api::prompt(state, prompt_name, None)?;
    let mut options = api::input_options(state, prompt, Truncation::Right);
    options.encode.add_special = add_special;
    let seqs = api::sequences(state, texts.into_iter().map(Owned::Text).collect(), options).await?;
    // The answer costs ~40 bytes a token: bounded like an embedding request's tokens.
    let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
    let max = state.limits.max_queue_tokens;
    if tokens > max {
        return Err(ApiError::too_large(
            "request_too_large",
            format!("the request has {tokens} tokens, more than {max} per request (--max-queue-tokens)"),
        ));
    }
    let tok = state.model.tokenizer();
    Ok(seqs
        .into_iter()
        .map(|seq| {
            seq.ids
                .into_iter()
                .map(|id| Token {
                    id,
                    text: tok.piece(id).unwrap_or_default().to_string(),
                    special: tok.is_special(id),
                    start: None,
                    stop: None,
                })
                .collect()
        })
        .collect())
}

async fn tokenize_request(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, Stats), ApiError> {
    let request: TokenizeRequest = api::parse_body(body, &state.limits)?;
    let texts = parse_texts("inputs", request.inputs, state.limits.max_inputs)?;
    let out = tokens(
        state,
        texts,
        request.prompt_name.as_deref(),
        request.add_special_tokens.unwrap_or(true),
    )
    .await?;
    Ok((Json(out).into_response(), Stats::default()))
}

#[utoipa::path(post, path = "/tokenize", tag = "TEI", request_body = TokenizeRequest,
    responses((status = 200, body = Vec<Vec<Token>>), (status = 400, description = "a bad field, named")))]
pub async fn tokenize(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/tokenize",
        Flavor::Tei,
        &id,
        gone,
        tokenize_request(&state, body),
    )
    .await
}

#[utoipa::path(get, path = "/info", tag = "TEI", responses((status = 200, description = "the model, its limits and the server's")))]
pub async fn info(Extension(state): Extension<Arc<AppState>>) -> Response {
    let model = &state.model;
    let prompts: serde_json::Map<String, serde_json::Value> = gemma_graph::PROMPTS
        .iter()
        .map(|(n, t)| (n.to_string(), json!(t)))
        .collect();
    Json(json!({
        "model_id": state.model_name,
        "model_type": {"embedding": {"pooling": "mean"}},
        "dimensions": model.output_dim(),
        "matryoshka_dimensions": gemma_graph::MATRYOSHKA_DIMS,
        "prompts": prompts,
        "max_input_length": model.config().context_length,
        "max_client_batch_size": state.limits.max_inputs,
        "max_batch_tokens": state.limits.max_batch_tokens,
        "max_queue_tokens": state.limits.max_queue_tokens,
        "backend": model.backend().name(),
        "precision": model.precision().name(),
        "threads": model.threads(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}
