//! TEI's `POST /embed_all`: per input, the encoder's state for every token (after its final
//! norm, before pooling) — `[tokens][768]`. Served by a second instance of each model with a
//! per-token head (`serve --embed-all`), so the embedding routes never compute or copy them.
//! An answer holds 768 floats a token, so a request may hold at most `--max-batch-tokens`
//! tokens (8,192: about 25 MB of floats, several times that as JSON).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::Deserialize;

use crate::api::{self, AppState, Stats};
use crate::error::{ApiError, Flavor};
use crate::inputs::{parse_input, RawInput};
use crate::{ClientGone, RequestId};

/// TEI's embed_all request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmbedAllRequest {
    inputs: Option<RawInput>,
    truncate: Option<bool>,
    prompt_name: Option<String>,
}

async fn embed_all_request(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, Stats), ApiError> {
    let Some(tokens_state) = &state.token_states else {
        return Err(ApiError::invalid(
            "embed_all_off",
            "per-token states are not served: start the server with --embed-all",
        ));
    };
    let request: EmbedAllRequest = api::parse_body(body, &state.limits)?;
    let prompt = api::prompt(state, request.prompt_name.as_deref(), None)?;
    let truncation = match request.truncate {
        Some(false) => Truncation::Error,
        _ => Truncation::Right,
    };
    let seqs = parse_input("inputs", request.inputs, state.limits.max_inputs)?
        .into_sequences(tokens_state, prompt, truncation)
        .await?;
    let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
    let max = state.limits.max_batch_tokens;
    if tokens > max {
        return Err(ApiError::too_large(
            "request_too_large",
            format!("the request has {tokens} tokens; /embed_all answers at most {max} (--max-batch-tokens), 768 floats each"),
        ));
    }
    let (done, stats) = api::embed(tokens_state, seqs).await?;
    let dim = tokens_state.model.output_dim();
    let per_input: Vec<Vec<&[f32]>> = done.vectors.iter().map(|rows| rows.chunks(dim).collect()).collect();
    Ok((Json(per_input).into_response(), stats))
}

#[utoipa::path(post, path = "/embed_all", tag = "TEI", request_body = EmbedAllRequest,
    responses((status = 200, description = "per input, one 768-float state per token", body = Vec<Vec<Vec<f32>>>),
        (status = 400, description = "not served (--embed-all), a bad field"), (status = 413, description = "more than --max-batch-tokens tokens")))]
pub async fn embed_all(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/embed_all",
        Flavor::Tei,
        &id,
        gone,
        embed_all_request(&state, body),
    )
    .await
}
