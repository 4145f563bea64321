//! What every embedding route shares: the state, reading a JSON body within the limits,
//! tokenizing with the truncation rules, queueing, Matryoshka, and the per-request log line
//! with its timing headers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gemma_graph::{matryoshka, EmbedOptions, EncodeOptions, Input, Model, Prompt, Sequence, Truncation, PROMPTS};
use serde::de::DeserializeOwned;

use crate::batcher::{Batcher, Done};
use crate::error::{ApiError, Flavor};
use crate::metrics::Metrics;
use crate::{ClientGone, Limits, RequestId};

pub struct AppState {
    pub model: Arc<Model>,
    pub model_name: String,
    pub encode: EncodeOptions,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub warm: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::Acquire)
    }
}

/// Parse a JSON body the body-limit layer let through.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limits: &Limits) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(
                "body_too_large",
                format!(
                    "request body is larger than {} bytes (--max-body-bytes)",
                    limits.max_body_bytes
                ),
            )
        } else {
            ApiError::invalid("invalid_body", format!("could not read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("invalid_json", format!("request body: {e}")))
}

/// The prompt for `prompt_name` / `prompt` (not both); a name must be one of the model's.
pub fn prompt(prompt_name: Option<&str>, prompt: Option<&str>) -> Result<Option<Prompt>, ApiError> {
    let p = match (prompt_name, prompt) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_prompt",
                "give `prompt_name` or `prompt`, not both",
            ))
        }
        (None, Some(text)) => Prompt::Text(text.to_string()),
        (None, None) => return Ok(None),
        (Some(name), None) => Prompt::Name(name.to_string()),
    };
    // Which names are the model's is the library's rule; the message names the request's field.
    p.text().map_err(|_| {
        let names: Vec<&str> = PROMPTS.iter().map(|(n, _)| *n).collect();
        ApiError::invalid(
            "invalid_prompt_name",
            format!(
                "unknown prompt_name {:?}; known: {}",
                prompt_name.unwrap_or(""),
                names.join(", ")
            ),
        )
    })?;
    Ok(Some(p))
}

/// `dimensions` checked against the model's Matryoshka sizes (`None`: full).
pub fn check_dimensions(dimensions: Option<usize>, model: &Model) -> Result<usize, ApiError> {
    model.matryoshka_dim(dimensions).map_err(|e| match e {
        gemma_graph::Error::BadOption { value, why, .. } => {
            ApiError::invalid("invalid_dimensions", format!("dimensions {value} {why}"))
        }
        e => ApiError::invalid("invalid_dimensions", e.to_string()),
    })
}

/// Turn a request's inputs into sequences by the library's rules (prompt, truncation side or
/// refusal, token arrays checked and wrapped), on a blocking thread; an error names the input.
pub async fn sequences(
    state: &AppState,
    inputs: Vec<Owned>,
    prompt: Option<Prompt>,
    truncation: Truncation,
) -> Result<Vec<Sequence>, ApiError> {
    let model = Arc::clone(&state.model);
    let options = EmbedOptions {
        prompt,
        encode: state.encode,
        truncation,
        ..EmbedOptions::default()
    };
    tokio::task::spawn_blocking(move || {
        let rules = model.sequencer(&options).map_err(input_error)?;
        rules.sequences(inputs.iter().map(Owned::as_input)).map_err(input_error)
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizer thread: {e}")))?
}

/// An input of a request, owned (it crosses to the tokenizer's thread).
pub enum Owned {
    Text(String),
    Tokens(Vec<u32>),
}

impl Owned {
    fn as_input(&self) -> Input<'_> {
        match self {
            Owned::Text(t) => Input::Text(t),
            Owned::Tokens(ids) => Input::Tokens(ids),
        }
    }
}

/// A library error about the inputs, as the client sees it.
fn input_error(e: gemma_graph::Error) -> ApiError {
    let code = match &e {
        gemma_graph::Error::WouldTruncate { .. } => "context_length_exceeded",
        gemma_graph::Error::TokenOutOfVocabulary { .. } => "invalid_token_id",
        _ => "invalid_input",
    };
    ApiError::invalid(code, e.to_string())
}

/// Queue texts and wait for their vectors (full dimension), within the request timeout; with
/// the request's stats (texts, tokens, queue and compute time).
pub async fn embed(state: &AppState, seqs: Vec<Sequence>, gone: Option<ClientGone>) -> Result<(Done, Stats), ApiError> {
    let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
    let limits = &state.limits;
    if tokens > limits.max_queue_tokens {
        return Err(ApiError::too_large(
            "request_too_large",
            format!(
                "the request has {tokens} tokens, more than the queue holds ({} tokens, --max-queue-tokens)",
                limits.max_queue_tokens
            ),
        ));
    }
    let texts = seqs.len();
    let ticket = state.batcher.submit(seqs).map_err(|full| ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "queue_full",
            format!(
                "the server is busy: {} tokens are queued and this request's {tokens} would pass the limit of {}; retry later",
                full.queued_tokens, limits.max_queue_tokens
            ),
        )
    })?;
    state.metrics.embedded(texts, tokens);
    let client_gone = async {
        match gone {
            Some(gone) => gone.wait().await,
            None => std::future::pending().await,
        }
    };
    // Returning early drops the ticket, and with it the texts that have not run yet.
    let waited = tokio::select! {
        waited = tokio::time::timeout(limits.request_timeout, ticket.wait()) => waited,
        () = client_gone => {
            return Err(ApiError::new(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "client_closed_request",
                "the client closed the connection",
            ));
        }
    };
    match waited {
        Ok(Ok(done)) => {
            let stats = Stats {
                inputs: texts,
                tokens,
                queue: done.queue,
                compute: done.compute,
            };
            Ok((done, stats))
        }
        Ok(Err(message)) => Err(ApiError::internal(message)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "timeout",
            format!(
                "the request did not finish within {} s (--request-timeout)",
                limits.request_timeout.as_secs_f64()
            ),
        )),
    }
}

/// A full vector cut to `dim`: re-normalized (the library's Matryoshka rule) or the plain
/// slice.
pub fn cut(vector: &[f32], dim: usize, normalize: bool) -> Vec<f32> {
    if normalize {
        matryoshka(vector, dim)
    } else {
        vector[..dim].to_vec()
    }
}

/// What a request did, for its log line, metrics and timing headers.
#[derive(Default)]
pub struct Stats {
    pub inputs: usize,
    pub tokens: usize,
    pub queue: Duration,
    pub compute: Duration,
}

/// The response of a route: its body, or its error in the route's flavor; logged and counted.
pub fn finish(
    state: &AppState,
    route: &'static str,
    flavor: Flavor,
    id: &RequestId,
    started: Instant,
    result: Result<(Response, Stats), ApiError>,
) -> Response {
    let (mut response, stats, error) = match result {
        Ok((response, stats)) => (response, stats, None),
        Err(e) => {
            let message = e.message.clone();
            (e.with_flavor(flavor).into_response(), Stats::default(), Some(message))
        }
    };
    let total = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.request(route, status, total.as_secs_f64());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    tracing::info!(
        request_id = %id.0,
        route,
        status,
        inputs = stats.inputs,
        tokens = stats.tokens,
        queue_ms = format_args!("{:.2}", ms(stats.queue)),
        compute_ms = format_args!("{:.2}", ms(stats.compute)),
        total_ms = format_args!("{:.2}", ms(total)),
        error = error.as_deref().unwrap_or(""),
        "request"
    );
    let headers: &mut HeaderMap = response.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    if stats.inputs > 0 {
        put("x-compute-time", format!("{:.3}", ms(stats.compute)));
        put("x-queue-time", format!("{:.3}", ms(stats.queue)));
        put("x-inference-time", format!("{:.3}", ms(stats.compute)));
        put("x-total-tokens", stats.tokens.to_string());
        put("x-compute-tokens", stats.tokens.to_string());
    }
    put("x-total-time", format!("{:.3}", ms(total)));
    response
}
