//! What every embedding route shares: the state, reading a JSON body within the limits,
//! tokenizing with the truncation rules, queueing, Matryoshka, and the per-request log line
//! with its timing headers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gemma_graph::{matryoshka, EmbedOptions, EncodeOptions, Input, Model, Prompt, Sequence, Truncation, PROMPTS};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

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
    /// The warm-up's outcome, once it ran.
    pub warm: Arc<OnceLock<Result<(), String>>>,
    /// Kibibytes of text being tokenized at once, across requests: the tokenizer's memory is
    /// a multiple of its input, so this bounds it whatever the requests' shapes.
    pub tokenizing: Arc<Semaphore>,
    pub tokenizing_kib: usize,
    /// `--default-prompt-name`: the prompt of requests that name none.
    pub default_prompt: Option<String>,
    /// `/embed_all`'s model: the same file with a per-token head (`serve --embed-all`).
    pub token_states: Option<Arc<AppState>>,
    /// The classifier heads `/predict` answers with (`serve --head`).
    pub heads: Vec<crate::heads::Head>,
    /// `--cache-entries`: finished vectors by token sequence.
    pub cache: Option<crate::cache::VectorCache>,
    /// `--calibration`: the column ranges of the int8/uint8 `dtype`s.
    pub ranges: Option<gemma_graph::Ranges>,
}

impl AppState {
    pub fn is_warm(&self) -> bool {
        matches!(self.warm.get(), Some(Ok(())))
    }
}

thread_local! {
    /// Most elements an outer input array keeps while it is read ([`with_max_inputs`]): past
    /// it the rest is only counted, so `[[],[],…]` cannot allocate millions of arrays.
    static MAX_INPUTS: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Run `parse` (a synchronous JSON parse) with input arrays capped at `max` elements.
fn with_max_inputs<T>(max: usize, parse: impl FnOnce() -> T) -> T {
    let before = MAX_INPUTS.with(|m| m.replace(max));
    let out = parse();
    MAX_INPUTS.with(|m| m.set(before));
    out
}

/// The cap [`with_max_inputs`] set for the parse running on this thread.
pub fn max_inputs() -> usize {
    MAX_INPUTS.with(std::cell::Cell::get)
}

/// Parse a JSON body `body.rs` read within the limits. It must be an object: serde would
/// read a JSON array positionally into the request's fields.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limits: &Limits) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError::invalid("invalid_body", format!("could not read the request body: {e}")))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        let got = match first {
            None => "empty".to_string(),
            Some(b'[') => "an array".to_string(),
            Some(_) => "not an object".to_string(),
        };
        return Err(ApiError::invalid(
            "invalid_json",
            format!("request body: must be a JSON object, got {got}"),
        ));
    }
    with_max_inputs(limits.max_inputs, || serde_json::from_slice(&bytes))
        .map_err(|e| ApiError::invalid("invalid_json", format!("request body: {e}")))
}

/// The prompt for `prompt_name` / `prompt` (not both; neither: the server's
/// `--default-prompt-name`); a name must be one of the model's.
pub fn prompt(state: &AppState, prompt_name: Option<&str>, prompt: Option<&str>) -> Result<Option<Prompt>, ApiError> {
    let prompt_name = prompt_name.or(if prompt.is_none() {
        state.default_prompt.as_deref()
    } else {
        None
    });
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
///
/// Bounded whatever the request's shape: its text, with the prompt copied in front of each,
/// may not pass `--max-body-bytes` (a 1 MB prompt on 2,048 inputs was 2 GB of text); it waits
/// for its share of the server-wide tokenizing budget; and it stops between inputs when the
/// request is dropped (timeout, client gone).
pub async fn sequences(state: &AppState, inputs: Vec<Owned>, options: EmbedOptions) -> Result<Vec<Sequence>, ApiError> {
    let text_bytes = texts_bytes(
        &options,
        inputs.iter().map(|i| match i {
            Owned::Text(t) => t.len(),
            Owned::Tokens(_) => 0,
        }),
    )?;
    tokenizing_job(state, text_bytes, move |model, stop| {
        let rules = model.sequencer(&options).map_err(input_error)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Err(ApiError::internal("stopped: the request was dropped"));
            }
            out.push(rules.sequence(index, input.as_input()).map_err(input_error)?);
        }
        Ok(out)
    })
    .await
}

/// The bytes of texts of these lengths with the prompt in front of each ([`tokenizing_job`]
/// refuses them past `--max-body-bytes`: a 1 MB prompt on 2,048 inputs was 2 GB of text).
pub fn texts_bytes(options: &EmbedOptions, lengths: impl Iterator<Item = usize>) -> Result<usize, ApiError> {
    let prompt_bytes = match &options.prompt {
        Some(p) => p.text().map_err(input_error)?.len(),
        None => 0,
    };
    Ok(lengths.map(|n| n + prompt_bytes).sum())
}

/// Run a tokenizing job of `text_bytes` on a blocking thread, after waiting for its share of
/// the server-wide tokenizing budget; `stop` turns true when the request is dropped (timeout,
/// client gone), and the job checks it between inputs.
pub async fn tokenizing_job<T: Send + 'static>(
    state: &AppState,
    text_bytes: usize,
    job: impl FnOnce(&Model, &AtomicBool) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let max = state.limits.max_body_bytes;
    if text_bytes > max {
        return Err(ApiError::too_large(
            "request_too_large",
            format!(
                "the request's texts, each with the prompt in front, come to {text_bytes} bytes, more than {max} (--max-body-bytes)"
            ),
        ));
    }
    let permits = tokenizing_permits(text_bytes, state.tokenizing_kib);
    // Held by the job itself: released when the tokenizing stops, not when the request goes.
    let share = Arc::clone(&state.tokenizing)
        .acquire_many_owned(permits)
        .await
        .map_err(|e| ApiError::internal(format!("tokenizer budget: {e}")))?;
    let model = Arc::clone(&state.model);
    let stop = Stop::default();
    let flag = Arc::clone(&stop.0);
    tokio::task::spawn_blocking(move || {
        let _share = share;
        job(&model, &flag)
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizer thread: {e}")))?
}

/// Tells a blocking job to stop when the request that started it is dropped.
#[derive(Default)]
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Kibibytes of the tokenizing budget (`total`) that `bytes` of text take: all of it for a
/// request larger than the budget, which then runs alone.
fn tokenizing_permits(bytes: usize, total: usize) -> u32 {
    bytes.div_ceil(1024).clamp(1, total.max(1)).min(u32::MAX as usize) as u32
}

/// The options of a route's inputs: the server's tokenizer options, a prompt, a truncation rule.
pub fn input_options(state: &AppState, prompt: Option<Prompt>, truncation: Truncation) -> EmbedOptions {
    EmbedOptions {
        prompt,
        encode: state.encode,
        truncation,
        ..EmbedOptions::default()
    }
}

/// An input of a request, owned (it crosses to the tokenizer's thread).
pub enum Owned {
    Text(String),
    Tokens(Vec<u32>),
}

impl Owned {
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Owned::Text(t) => Input::Text(t),
            Owned::Tokens(ids) => Input::Tokens(ids),
        }
    }
}

/// A library error about the inputs, as the client sees it.
pub(crate) fn input_error(e: gemma_graph::Error) -> ApiError {
    let code = match &e {
        gemma_graph::Error::WouldTruncate { .. } => "context_length_exceeded",
        gemma_graph::Error::TokenOutOfVocabulary { .. } => "invalid_token_id",
        _ => "invalid_input",
    };
    ApiError::invalid(code, e.to_string())
}

/// Run a route's work within the request timeout (503) and while its client stays (499).
/// Dropping the work drops its queued texts (the ticket) and stops its tokenization.
pub async fn bounded<T>(
    state: &AppState,
    gone: Option<ClientGone>,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let limit = state.limits.request_timeout;
    let client_gone = async {
        match gone {
            Some(gone) => gone.wait().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        done = tokio::time::timeout(limit, work) => done.unwrap_or_else(|_| Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "timeout",
            format!("the request did not finish within {} s (--request-timeout)", limit.as_secs_f64()),
        ))),
        () = client_gone => Err(ApiError::new(
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "invalid_request_error",
            "client_closed_request",
            "the client closed the connection",
        )),
    }
}

/// Queue texts and wait for their vectors (full dimension); with the request's stats (texts,
/// tokens, queue and compute time). Run inside [`bounded`].
pub async fn embed(state: &AppState, seqs: Vec<Sequence>) -> Result<(Done, Stats), ApiError> {
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
    // Cached vectors first (a hit is what the model would answer: vectors do not depend on
    // the batch); only the misses are queued.
    let mut cached: Vec<Option<(Vec<f32>, Vec<f32>)>> = vec![None; texts];
    let mut miss_at = Vec::new();
    let seqs: Vec<Sequence> = match &state.cache {
        None => seqs,
        Some(cache) => seqs
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| match cache.get(&s.ids) {
                Some((v, extra)) => {
                    cached[i] = Some((v.to_vec(), extra.to_vec()));
                    None
                }
                None => {
                    miss_at.push(i);
                    Some(s)
                }
            })
            .collect(),
    };
    let stats = |done: &Done| Stats {
        inputs: texts,
        tokens,
        queue: done.queue,
        compute: done.compute,
    };
    if seqs.is_empty() && texts > 0 {
        let (vectors, extra) = cached.into_iter().map(Option::unwrap_or_default).unzip();
        let done = Done {
            vectors,
            extra,
            queue: Duration::ZERO,
            compute: Duration::ZERO,
        };
        let stats = stats(&done);
        return Ok((done, stats));
    }
    let miss_ids: Vec<Vec<u32>> = match &state.cache {
        Some(_) => seqs.iter().map(|s| s.ids.clone()).collect(),
        None => Vec::new(),
    };
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
    let mut done = ticket.wait().await.map_err(ApiError::internal)?;
    if let Some(cache) = &state.cache {
        for ((ids, v), e) in miss_ids.iter().zip(&done.vectors).zip(&done.extra) {
            cache.put(ids, v, e);
        }
        let fresh = std::mem::take(&mut done.vectors)
            .into_iter()
            .zip(std::mem::take(&mut done.extra));
        for (i, answer) in miss_at.into_iter().zip(fresh) {
            cached[i] = Some(answer);
        }
        (done.vectors, done.extra) = cached.into_iter().map(Option::unwrap_or_default).unzip();
    }
    let stats = stats(&done);
    Ok((done, stats))
}

/// `encoding_format`: `"float"` (the default) or `"base64"` (the stored bytes).
pub fn base64_format(field: Option<&str>) -> Result<bool, ApiError> {
    match field {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "invalid_encoding_format",
            format!("encoding_format {other:?} is not \"float\" or \"base64\""),
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

/// On a response whose request a route logged (the outer layer logs the others).
#[derive(Clone, Copy, Debug)]
pub struct Logged;

/// What a request did, for its log line, metrics and timing headers.
#[derive(Default)]
pub struct Stats {
    pub inputs: usize,
    pub tokens: usize,
    pub queue: Duration,
    pub compute: Duration,
}

/// Count a finished request (HTTP or gRPC, by its HTTP status) and write its log line; the
/// request's wall time.
pub fn log_request(
    state: &AppState,
    route: &'static str,
    id: &RequestId,
    started: Instant,
    status: u16,
    stats: &Stats,
    error: Option<&str>,
) -> Duration {
    let total = started.elapsed();
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
        error = error.unwrap_or(""),
        "request"
    );
    total
}

/// A route's answer: `work` bounded by `--request-timeout` and the client's hang-up
/// ([`bounded`]), then logged, counted and given its timing headers ([`finish`]).
pub async fn respond(
    state: &AppState,
    route: &'static str,
    flavor: Flavor,
    id: &RequestId,
    gone: Option<axum::extract::Extension<ClientGone>>,
    work: impl std::future::Future<Output = Result<(Response, Stats), ApiError>>,
) -> Response {
    let started = Instant::now();
    let result = bounded(state, gone.map(|g| g.0), work).await;
    finish(state, route, flavor, id, started, result)
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
    let total = log_request(
        state,
        route,
        id,
        started,
        response.status().as_u16(),
        &stats,
        error.as_deref(),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    response.extensions_mut().insert(Logged);
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
