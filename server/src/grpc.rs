//! gRPC beside HTTP (`serve --grpc-port`): TEI's `tei.v1` API (proto/tei.proto) — `Info`,
//! `Embed` (`Embed`, `EmbedStream`), `Tokenize` (`Tokenize`, `TokenizeStream`, `Decode`,
//! `DecodeStream`) — so TEI's gRPC clients work. The same queue, limits, API key (metadata
//! `authorization: Bearer KEY`), metrics and request ids as the HTTP routes: every call goes
//! through the functions the HTTP handlers use, and errors become gRPC statuses.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use gemma_graph::Truncation;
use tonic::{Request, Response, Status, Streaming};

use crate::api::{self, AppState, Owned, Stats};
use crate::error::ApiError;
use crate::models::Models;
use crate::RequestId;

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("tei.v1");
}

use pb::embed_server::{Embed, EmbedServer};
use pb::info_server::{Info, InfoServer};
use pb::predict_server::{Predict, PredictServer};
use pb::tokenize_server::{Tokenize, TokenizeServer};

/// Requests of one stream embedded at once (in order): enough to fill batches from a single
/// streaming client, few enough that a stream cannot take the whole queue.
const STREAM_IN_FLIGHT: usize = 32;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The gRPC status of an API error, by its HTTP status (TEI's mapping).
fn status_of(e: &ApiError) -> Status {
    let message = e.message.clone();
    match (e.status.as_u16(), e.code) {
        (400 | 413 | 415 | 422, _) => Status::invalid_argument(message),
        (401, _) => Status::unauthenticated(message),
        (429, _) => Status::resource_exhausted(message),
        (499, _) => Status::cancelled(message),
        (503, "timeout") => Status::deadline_exceeded(message),
        (503, _) => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

/// Run one call: bounded by `--request-timeout`, logged and counted as HTTP requests are —
/// also when the client cancels it (the future is dropped: logged as 499, as HTTP's hang-ups).
async fn call<T>(
    state: &AppState,
    route: &'static str,
    id: &RequestId,
    work: impl std::future::Future<Output = Result<(T, Stats), ApiError>>,
) -> Result<T, Status> {
    let mut pending = Pending {
        state,
        route,
        id,
        started: Instant::now(),
        armed: true,
    };
    let result = api::bounded(state, None, work).await;
    pending.armed = false;
    let (status, stats, error) = match &result {
        Ok((_, stats)) => (200, stats, None),
        Err(e) => (e.status.as_u16(), &Stats::default(), Some(e.message.as_str())),
    };
    api::log_request(state, route, id, pending.started, status, stats, error);
    result.map(|(v, _)| v).map_err(|e| status_of(&e))
}

/// Logs a call dropped before it finished.
struct Pending<'a> {
    state: &'a AppState,
    route: &'static str,
    id: &'a RequestId,
    started: Instant,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            let why = Some("the client cancelled the call");
            api::log_request(
                self.state,
                self.route,
                self.id,
                self.started,
                499,
                &Stats::default(),
                why,
            );
        }
    }
}

fn request_id<T>(request: &Request<T>) -> RequestId {
    request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(crate::auth::request_id(None)))
}

/// A unary answer carrying the request id, as HTTP responses do.
fn answer<T>(value: T, id: &RequestId) -> Response<T> {
    let mut response = Response::new(value);
    if let Ok(v) = id.0.parse() {
        response.metadata_mut().insert("x-request-id", v);
    }
    response
}

fn metadata(stats: &Stats, chars: usize, started: Instant) -> pb::Metadata {
    let ns = |d: std::time::Duration| d.as_nanos().min(u64::MAX as u128) as u64;
    pb::Metadata {
        compute_chars: chars.min(u32::MAX as usize) as u32,
        compute_tokens: stats.tokens.min(u32::MAX as usize) as u32,
        total_time_ns: ns(started.elapsed()),
        tokenization_time_ns: 0,
        queue_time_ns: ns(stats.queue),
        inference_time_ns: ns(stats.compute),
    }
}

/// The services, sharing the HTTP routes' models.
#[derive(Clone)]
pub struct Services {
    models: Arc<Models>,
}

impl Services {
    /// The model a call names in its `x-model` metadata (none: the first).
    fn state<T>(&self, request: &Request<T>) -> Result<Arc<AppState>, Status> {
        let name = request.metadata().get("x-model").and_then(|v| v.to_str().ok());
        self.models
            .get(name)
            .map(Arc::clone)
            .map_err(|e| Status::not_found(e.message))
    }
}

async fn embed_one(state: &AppState, req: pb::EmbedRequest) -> Result<(pb::EmbedResponse, Stats), ApiError> {
    let started = Instant::now();
    let dim = api::check_dimensions(req.dimensions.map(|d| d as usize), &state.model)?;
    let prompt = api::prompt(state, req.prompt_name.as_deref(), None)?;
    // proto3 cannot tell `truncate: false` from a field left out, so the server's rule
    // applies: texts past the context are truncated (TEI with --auto-truncate does the same).
    let truncation = match pb::TruncationDirection::try_from(req.truncation_direction) {
        Ok(pb::TruncationDirection::Left) => Truncation::Left,
        _ => Truncation::Right,
    };
    let chars = req.inputs.chars().count();
    let seqs = api::sequences(
        state,
        vec![Owned::Text(req.inputs)],
        api::input_options(state, prompt, truncation),
    )
    .await?;
    let (done, stats) = api::embed(state, seqs).await?;
    let v = done.vectors.first().ok_or_else(|| ApiError::internal("no vector"))?;
    let response = pb::EmbedResponse {
        embeddings: api::cut(v, dim, req.normalize),
        metadata: Some(metadata(&stats, chars, started)),
    };
    Ok((response, stats))
}

#[tonic::async_trait]
impl Embed for Services {
    async fn embed(&self, request: Request<pb::EmbedRequest>) -> Result<Response<pb::EmbedResponse>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let v = call(
            &state,
            "/tei.v1.Embed/Embed",
            &id,
            embed_one(&state, request.into_inner()),
        )
        .await?;
        Ok(answer(v, &id))
    }

    type EmbedStreamStream = ResponseStream<pb::EmbedResponse>;

    /// Each message is embedded as its own request, up to [`STREAM_IN_FLIGHT`] at once (so
    /// they share batches), answered in order; the first error ends the stream. A client that
    /// goes away drops the stream, and with it the texts still queued.
    async fn embed_stream(
        &self,
        request: Request<Streaming<pb::EmbedRequest>>,
    ) -> Result<Response<Self::EmbedStreamStream>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let out = request
            .into_inner()
            .map(move |message| {
                let (state, id) = (Arc::clone(&state), id.clone());
                async move {
                    let req = message?;
                    call(&state, "/tei.v1.Embed/EmbedStream", &id, embed_one(&state, req)).await
                }
            })
            .buffered(STREAM_IN_FLIGHT);
        Ok(Response::new(Box::pin(until_error(out))))
    }
}

/// A stream that ends after its first error (the error is sent as the call's status).
fn until_error<T: Send + 'static>(
    stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    stream.scan(false, |failed, item| {
        let next = if *failed {
            None
        } else {
            *failed = item.is_err();
            Some(item)
        };
        std::future::ready(next)
    })
}

#[tonic::async_trait]
impl Info for Services {
    async fn info(&self, request: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let state = &state;
        let limits = &state.limits;
        let clamp = |n: usize| n.min(u32::MAX as usize) as u32;
        let info = pb::InfoResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            model_id: state.model_name.clone(),
            model_dtype: state.model.precision().name().into(),
            model_type: pb::ModelType::Embedding as i32,
            max_concurrent_requests: clamp(limits.max_connections.unwrap_or_else(crate::default_max_connections)),
            max_input_length: clamp(state.model.config().context_length),
            max_batch_tokens: clamp(limits.max_batch_tokens),
            max_client_batch_size: clamp(limits.max_inputs),
            tokenization_workers: 1,
            ..Default::default()
        };
        let v = call(state, "/tei.v1.Info/Info", &id, async { Ok((info, Stats::default())) }).await?;
        Ok(answer(v, &id))
    }
}

async fn predict_one(
    state: &AppState,
    head: Option<&str>,
    req: pb::PredictRequest,
) -> Result<(pb::PredictResponse, Stats), ApiError> {
    let started = Instant::now();
    let chars = req.inputs.chars().count();
    let truncation = match pb::TruncationDirection::try_from(req.truncation_direction) {
        Ok(pb::TruncationDirection::Left) => Truncation::Left,
        _ => Truncation::Right,
    };
    let (mut per_text, stats) =
        crate::predict::predict_texts(state, head, vec![req.inputs], truncation, req.raw_scores).await?;
    let predictions = per_text
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|p| pb::Prediction {
            score: p.score,
            label: p.label,
        })
        .collect();
    let metadata = Some(metadata(&stats, chars, started));
    Ok((pb::PredictResponse { predictions, metadata }, stats))
}

fn head_of<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("x-head")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tonic::async_trait]
impl Predict for Services {
    async fn predict(&self, request: Request<pb::PredictRequest>) -> Result<Response<pb::PredictResponse>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let head = head_of(&request);
        let work = predict_one(&state, head.as_deref(), request.into_inner());
        let v = call(&state, "/tei.v1.Predict/Predict", &id, work).await?;
        Ok(answer(v, &id))
    }

    type PredictStreamStream = ResponseStream<pb::PredictResponse>;

    async fn predict_stream(
        &self,
        request: Request<Streaming<pb::PredictRequest>>,
    ) -> Result<Response<Self::PredictStreamStream>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let head = head_of(&request);
        let out = request
            .into_inner()
            .map(move |message| {
                let (state, id, head) = (Arc::clone(&state), id.clone(), head.clone());
                async move {
                    let req = message?;
                    call(
                        &state,
                        "/tei.v1.Predict/PredictStream",
                        &id,
                        predict_one(&state, head.as_deref(), req),
                    )
                    .await
                }
            })
            .buffered(STREAM_IN_FLIGHT);
        Ok(Response::new(Box::pin(until_error(out))))
    }
}

async fn tokenize_one(state: &AppState, req: pb::EncodeRequest) -> Result<(pb::EncodeResponse, Stats), ApiError> {
    let mut texts = crate::tei::tokens(
        state,
        vec![req.inputs],
        req.prompt_name.as_deref(),
        req.add_special_tokens,
    )
    .await?;
    let tokens = texts
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|t| pb::SimpleToken {
            id: t.id,
            text: t.text,
            special: t.special,
            start: None,
            stop: None,
        })
        .collect();
    Ok((pb::EncodeResponse { tokens }, Stats::default()))
}

fn decode_one(state: &AppState, req: &pb::DecodeRequest) -> Result<(pb::DecodeResponse, Stats), ApiError> {
    let text = crate::tei_text::decode_ids(state, &req.ids, req.skip_special_tokens, "ids")?;
    Ok((pb::DecodeResponse { text }, Stats::default()))
}

#[tonic::async_trait]
impl Tokenize for Services {
    async fn tokenize(&self, request: Request<pb::EncodeRequest>) -> Result<Response<pb::EncodeResponse>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let v = call(
            &state,
            "/tei.v1.Tokenize/Tokenize",
            &id,
            tokenize_one(&state, request.into_inner()),
        )
        .await?;
        Ok(answer(v, &id))
    }

    type TokenizeStreamStream = ResponseStream<pb::EncodeResponse>;

    async fn tokenize_stream(
        &self,
        request: Request<Streaming<pb::EncodeRequest>>,
    ) -> Result<Response<Self::TokenizeStreamStream>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let out = request.into_inner().then(move |message| {
            let (state, id) = (Arc::clone(&state), id.clone());
            async move {
                let req = message?;
                call(
                    &state,
                    "/tei.v1.Tokenize/TokenizeStream",
                    &id,
                    tokenize_one(&state, req),
                )
                .await
            }
        });
        Ok(Response::new(Box::pin(until_error(out))))
    }

    async fn decode(&self, request: Request<pb::DecodeRequest>) -> Result<Response<pb::DecodeResponse>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let req = request.into_inner();
        let v = call(&state, "/tei.v1.Tokenize/Decode", &id, async {
            decode_one(&state, &req)
        })
        .await?;
        Ok(answer(v, &id))
    }

    type DecodeStreamStream = ResponseStream<pb::DecodeResponse>;

    async fn decode_stream(
        &self,
        request: Request<Streaming<pb::DecodeRequest>>,
    ) -> Result<Response<Self::DecodeStreamStream>, Status> {
        let (id, state) = (request_id(&request), self.state(&request)?);
        let out = request.into_inner().then(move |message| {
            let (state, id) = (Arc::clone(&state), id.clone());
            async move {
                let req = message?;
                call(&state, "/tei.v1.Tokenize/DecodeStream", &id, async {
                    decode_one(&state, &req)
                })
                .await
            }
        });
        Ok(Response::new(Box::pin(until_error(out))))
    }
}

/// Serve the gRPC API on `listener` until `shutdown` resolves (then finish the calls in
/// flight). Every call needs the API key, if one is set; a refusal is logged and counted.
pub async fn serve(
    models: Arc<Models>,
    api_key: Option<String>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_message = models.first().limits.max_body_bytes;
    let guard_state = Arc::clone(models.first());
    let guard = move |mut request: Request<()>| -> Result<Request<()>, Status> {
        let id = RequestId(crate::auth::request_id(
            request.metadata().get("x-request-id").and_then(|v| v.to_str().ok()),
        ));
        if let Some(key) = &api_key {
            let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
            if let Err(message) = crate::auth::check_key(key, given) {
                api::log_request(
                    &guard_state,
                    "grpc",
                    &id,
                    Instant::now(),
                    401,
                    &Stats::default(),
                    Some(message),
                );
                return Err(Status::unauthenticated(message));
            }
        }
        request.extensions_mut().insert(id);
        Ok(request)
    };
    let services = Services { models };
    use tonic::service::interceptor::InterceptedService;
    let embed = EmbedServer::new(services.clone())
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
    let tokenize = TokenizeServer::new(services.clone()).max_decoding_message_size(max_message);
    let embed = InterceptedService::new(embed, guard.clone());
    let info = InterceptedService::new(InfoServer::new(services.clone()), guard.clone());
    let predict = InterceptedService::new(
        PredictServer::new(services).max_decoding_message_size(max_message),
        guard.clone(),
    );
    let tokenize = InterceptedService::new(tokenize, guard);
    tonic::transport::Server::builder()
        .add_service(embed)
        .add_service(info)
        .add_service(predict)
        .add_service(tokenize)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(std::io::Error::other)
}
