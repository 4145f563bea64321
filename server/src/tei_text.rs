//! TEI's `POST /similarity` (a source sentence against sentences: cosine per sentence) and
//! `POST /decode` (token ids back to text).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::Deserialize;

use crate::api::{self, AppState, Owned, Stats};
use crate::error::{ApiError, Flavor};
use crate::{ClientGone, RequestId};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimilarityInputs {
    source_sentence: String,
    sentences: Vec<String>,
}

/// TEI's similarity request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimilarityRequest {
    inputs: Option<SimilarityInputs>,
    truncate: Option<bool>,
    prompt_name: Option<String>,
    /// TEI's pass-through parameters: none change a cosine here.
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<serde_json::Value>,
}

async fn similarity_request(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, Stats), ApiError> {
    let request: SimilarityRequest = api::parse_body(body, &state.limits)?;
    let Some(inputs) = request.inputs else {
        return Err(ApiError::invalid(
            "missing_inputs",
            "`inputs` ({\"source_sentence\": ..., \"sentences\": [...]}) is required",
        ));
    };
    if inputs.sentences.is_empty() {
        return Err(ApiError::invalid("invalid_input", "`inputs.sentences` is empty"));
    }
    if inputs.sentences.len() + 1 > state.limits.max_inputs {
        return Err(ApiError::too_large(
            "too_many_inputs",
            format!(
                "{} sentences and the source are more than {} inputs (--max-inputs)",
                inputs.sentences.len(),
                state.limits.max_inputs
            ),
        ));
    }
    let prompt = api::prompt(state, request.prompt_name.as_deref(), None)?;
    let truncation = match request.truncate {
        Some(false) => Truncation::Error,
        _ => Truncation::Right,
    };
    let owned = std::iter::once(inputs.source_sentence)
        .chain(inputs.sentences)
        .map(Owned::Text)
        .collect();
    let seqs = api::sequences(state, owned, api::input_options(state, prompt, truncation)).await?;
    let (done, stats) = api::embed(state, seqs).await?;
    let (source, others) = done
        .vectors
        .split_first()
        .ok_or_else(|| ApiError::internal("no vectors"))?;
    let scores: Vec<f32> = others.iter().map(|v| cosine(source, v)).collect();
    Ok((Json(scores).into_response(), stats))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

#[utoipa::path(post, path = "/similarity", tag = "TEI", request_body = SimilarityRequest,
    responses((status = 200, description = "the cosine of the source with each sentence", body = Vec<f32>),
        (status = 400, description = "a bad field, named")))]
pub async fn similarity(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/similarity",
        Flavor::Tei,
        &id,
        gone,
        similarity_request(&state, body),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Ids {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

/// TEI's decode request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecodeRequest {
    ids: Option<Ids>,
    skip_special_tokens: Option<bool>,
}

async fn decode_request(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<(Response, Stats), ApiError> {
    let request: DecodeRequest = api::parse_body(body, &state.limits)?;
    let arrays = match request.ids {
        None => {
            return Err(ApiError::invalid(
                "missing_ids",
                "`ids` (token ids, or arrays of them) is required",
            ))
        }
        Some(Ids::One(ids)) => vec![ids],
        Some(Ids::Many(arrays)) => arrays,
    };
    if arrays.len() > state.limits.max_inputs {
        return Err(ApiError::too_large(
            "too_many_inputs",
            format!(
                "{} id arrays are more than {} (--max-inputs)",
                arrays.len(),
                state.limits.max_inputs
            ),
        ));
    }
    let skip = request.skip_special_tokens.unwrap_or(true);
    let texts = arrays
        .iter()
        .enumerate()
        .map(|(i, ids)| decode_ids(state, ids, skip, &format!("ids[{i}]")))
        .collect::<Result<Vec<String>, ApiError>>()?;
    Ok((Json(texts).into_response(), Stats::default()))
}

/// Token ids back to text (TEI's `/decode` and gRPC's `Decode`); an id outside the vocabulary
/// is refused, named as `field[j]`.
pub(crate) fn decode_ids(state: &AppState, ids: &[u32], skip_special: bool, field: &str) -> Result<String, ApiError> {
    let tok = state.model.tokenizer();
    let vocab = tok.vocab_size();
    if let Some((j, id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        return Err(ApiError::invalid(
            "invalid_ids",
            format!("{field}[{j}] = {id} is outside the vocabulary (size {vocab})"),
        ));
    }
    Ok(tok.decode_special(ids, skip_special))
}

#[utoipa::path(post, path = "/decode", tag = "TEI", request_body = DecodeRequest,
    responses((status = 200, description = "a text per id array", body = Vec<String>), (status = 400, description = "an id outside the vocabulary")))]
pub async fn decode(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(&state, "/decode", Flavor::Tei, &id, gone, decode_request(&state, body)).await
}
