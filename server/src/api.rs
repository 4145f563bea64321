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
use gemma_graph::{matryoshka, EncodeOptions, Model, PROMPTS};
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

/// The prompt text for `prompt_name` / `prompt` (not both).
pub fn prompt_text(prompt_name: Option<&str>, prompt: Option<&str>) -> Result<String, ApiError> {
    match (prompt_name, prompt) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "invalid_prompt",
            "give `prompt_name` or `prompt`, not both",
        )),
        (None, Some(text)) => Ok(text.to_string()),
        (None, None) => Ok(String::new()),
        (Some(name), None) => PROMPTS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| {
                let names: Vec<&str> = PROMPTS.iter().map(|p| p.0).collect();
                ApiError::invalid(
                    "invalid_prompt_name",
                    format!("unknown prompt_name {name:?}; known: {}", names.join(", ")),
                )
            }),
    }
}

/// `dimensions` checked against the model's Matryoshka sizes (`None`: full).
pub fn check_dimensions(dimensions: Option<usize>, model: &Model) -> Result<usize, ApiError> {
    let full = model.output_dim();
    match dimensions {
        None => Ok(full),
        Some(d) if d == full || gemma_graph::MATRYOSHKA_DIMS.contains(&d) => Ok(d),
        Some(d) => {
            let allowed: Vec<String> = gemma_graph::MATRYOSHKA_DIMS.iter().map(|d| d.to_string()).collect();
            Err(ApiError::invalid(
                "invalid_dimensions",
                format!("dimensions {d} is not one of {}", allowed.join(", ")),
            ))
        }
    }
}

/// How texts past the context are handled.
#[derive(Clone, Copy, Debug)]
pub struct Truncate {
    pub enabled: bool,
    /// Keep the end of the text instead of its start (TEI's `truncation_direction: Left`).
    pub left: bool,
}

/// Tokenize texts (prompt in front), on a blocking thread: each becomes BOS … EOS within the
/// context, or an error naming its index.
pub async fn tokenize_texts(
    state: &AppState,
    texts: Vec<String>,
    prompt: String,
    truncate: Truncate,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let model = Arc::clone(&state.model);
    let options = EncodeOptions {
        max_tokens: None,
        ..state.encode
    };
    tokio::task::spawn_blocking(move || {
        let context = model.config().context_length;
        let tokenizer = model.tokenizer();
        let mut out = Vec::with_capacity(texts.len());
        let mut joined = String::new();
        for (index, text) in texts.iter().enumerate() {
            joined.clear();
            joined.push_str(&prompt);
            joined.push_str(text);
            let ids = tokenizer.encode(&joined, &options).ids;
            out.push(fit_context(
                ids,
                index,
                context,
                tokenizer.bos(),
                tokenizer.eos(),
                truncate,
            )?);
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizer thread: {e}")))?
}

/// Token arrays given by the client: ids checked against the vocabulary, BOS/EOS added unless
/// the array already starts with BOS and ends with EOS, then fitted to the context.
pub fn token_inputs(model: &Model, arrays: Vec<Vec<u64>>, truncate: Truncate) -> Result<Vec<Vec<u32>>, ApiError> {
    let tokenizer = model.tokenizer();
    let vocab = tokenizer.vocab_size() as u64;
    let (bos, eos) = (tokenizer.bos(), tokenizer.eos());
    let context = model.config().context_length;
    arrays
        .into_iter()
        .enumerate()
        .map(|(index, ids)| {
            if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
                return Err(ApiError::invalid(
                    "invalid_token_id",
                    format!("input {index}: token id {bad} is outside the vocabulary (0..{vocab})"),
                ));
            }
            let mut ids: Vec<u32> = ids.into_iter().map(|id| id as u32).collect();
            let wrapped = ids.len() >= 2 && ids[0] == bos && ids[ids.len() - 1] == eos;
            if !wrapped {
                ids.insert(0, bos);
                ids.push(eos);
            }
            fit_context(ids, index, context, bos, eos, truncate)
        })
        .collect()
}

/// BOS + the first (or last) context−2 tokens + EOS, or an error when truncation is off.
fn fit_context(
    ids: Vec<u32>,
    index: usize,
    context: usize,
    bos: u32,
    eos: u32,
    truncate: Truncate,
) -> Result<Vec<u32>, ApiError> {
    if ids.len() <= context {
        return Ok(ids);
    }
    if !truncate.enabled {
        return Err(ApiError::invalid(
            "context_length_exceeded",
            format!(
                "input {index} has {} tokens, more than the model's {context}-token context (truncate is off)",
                ids.len()
            ),
        ));
    }
    let body = &ids[1..ids.len() - 1];
    let keep = context - 2;
    let kept = if truncate.left {
        &body[body.len() - keep..]
    } else {
        &body[..keep]
    };
    let mut out = Vec::with_capacity(context);
    out.push(bos);
    out.extend_from_slice(kept);
    out.push(eos);
    Ok(out)
}

/// Queue texts and wait for their vectors (full dimension), within the request timeout; with
/// the request's stats (texts, tokens, queue and compute time).
pub async fn embed(state: &AppState, ids: Vec<Vec<u32>>, gone: Option<ClientGone>) -> Result<(Done, Stats), ApiError> {
    let tokens: usize = ids.iter().map(Vec::len).sum();
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
    let texts = ids.len();
    let ticket = state.batcher.submit(ids).map_err(|full| ApiError {
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
