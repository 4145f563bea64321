//! TEI's `POST /predict` over the classifier heads the model was loaded with
//! (`serve --head NAME=FILE[:kind]`, the heads `run --head` uses): per input, every class's
//! score with its label, best first. The head's outputs come from the same forward pass as
//! the text's vector (one extra matrix product), so they are the numbers `run --head` writes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gemma_graph::Truncation;
use serde::{Deserialize, Serialize};

use crate::api::{self, AppState, Stats};
use crate::error::{ApiError, Flavor};
use crate::heads::Head;
use crate::inputs::{parse_texts, RawInput};
use crate::{ClientGone, RequestId};

/// TEI's predict request; `head` (our extension) picks a head when several are loaded.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PredictRequest {
    /// A text or texts (TEI's text pairs need a cross-encoder: refused).
    inputs: Option<RawInput>,
    truncate: Option<bool>,
    /// Logits instead of probabilities: needs a head loaded as `:linear`.
    raw_scores: Option<bool>,
    head: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Prediction {
    pub score: f32,
    pub label: String,
}

/// Per class, best first: probabilities, or the logits when `raw` (of a `linear` head). A
/// `linear` head's probabilities are the softmax of its logits, in f32 as the library's.
fn predictions(head: &Head, values: &[f32], raw: bool) -> Vec<Prediction> {
    let scores: Vec<f32> = if head.softmax || raw {
        values.to_vec()
    } else {
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        exp.iter().map(|e| e / sum).collect()
    };
    let mut out: Vec<Prediction> = scores
        .into_iter()
        .zip(&head.labels)
        .map(|(score, label)| Prediction {
            score,
            label: label.clone(),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The head called `name` (none: the only one).
fn head<'a>(state: &'a AppState, name: Option<&str>) -> Result<&'a Head, ApiError> {
    let names = || {
        state
            .heads
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, state.heads.as_slice()) {
        (_, []) => Err(ApiError::invalid(
            "no_head",
            "this server has no classifier head: start it with --head NAME=FILE",
        )),
        (None, [only]) => Ok(only),
        (None, _) => Err(ApiError::invalid(
            "invalid_head",
            format!("several heads are loaded: name one in `head` ({})", names()),
        )),
        (Some(name), heads) => heads
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| ApiError::invalid("invalid_head", format!("no head {name:?}; loaded: {}", names()))),
    }
}

/// Every text's predictions by head `head_name` (HTTP's `/predict` and gRPC's `Predict`).
pub(crate) async fn predict_texts(
    state: &AppState,
    head_name: Option<&str>,
    texts: Vec<String>,
    truncation: Truncation,
    raw: bool,
) -> Result<(Vec<Vec<Prediction>>, Stats), ApiError> {
    let head = head(state, head_name)?;
    if raw && head.softmax {
        return Err(ApiError::invalid(
            "invalid_raw_scores",
            format!(
                "head {:?} was loaded with softmax; load it as NAME=FILE:linear for raw scores",
                head.name
            ),
        ));
    }
    let prompt = api::prompt(state, None, None)?;
    let owned = texts.into_iter().map(api::Owned::Text).collect();
    let seqs = api::sequences(state, owned, api::input_options(state, prompt, truncation)).await?;
    let (done, stats) = api::embed(state, seqs).await?;
    let classes = head.labels.len();
    let per_text = done
        .extra
        .iter()
        .map(|e| predictions(head, &e[head.offset..head.offset + classes], raw))
        .collect();
    Ok((per_text, stats))
}

async fn predict_request(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<(Response, Stats), ApiError> {
    let request: PredictRequest = api::parse_body(body, &state.limits)?;
    let single = matches!(request.inputs, Some(RawInput::Text(_)));
    // Texts only: TEI's text pairs need a cross-encoder, which this model is not.
    let texts = parse_texts("inputs", request.inputs, state.limits.max_inputs)?;
    let truncation = match request.truncate {
        Some(false) => Truncation::Error,
        _ => Truncation::Right,
    };
    let raw = request.raw_scores.unwrap_or(false);
    let (per_text, stats) = predict_texts(state, request.head.as_deref(), texts, truncation, raw).await?;
    let body = if single {
        Json(per_text.into_iter().next().unwrap_or_default()).into_response()
    } else {
        Json(per_text).into_response()
    };
    Ok((body, stats))
}

#[utoipa::path(post, path = "/predict", tag = "TEI", request_body = PredictRequest,
    responses((status = 200, description = "per input, every class's score and label, best first", body = Vec<Prediction>),
        (status = 400, description = "no head, an unknown head, raw scores of a softmax head, a bad field")))]
pub async fn predict(
    Extension(state): Extension<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    gone: Option<Extension<ClientGone>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    api::respond(
        &state,
        "/predict",
        Flavor::Tei,
        &id,
        gone,
        predict_request(&state, body),
    )
    .await
}
