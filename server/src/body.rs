//! Reading a request body, before any route sees it, within the limits: its declared length,
//! its bytes, its time, and the server's shutdown.
//!
//! - A `Content-Length` past `--max-body-bytes` is refused (413) before a byte is read, so a
//!   client that sent `Expect: 100-continue` never gets `100 Continue` for a body the server
//!   would not take (hyper sends it only when the body is first read).
//! - A chunked body is counted as it arrives and refused at the limit.
//! - The whole body must arrive within `--body-timeout` (408): a client sending a byte a
//!   second cannot hold a connection for hours.
//! - On shutdown, a request still sending its body is answered 503 at once, so SIGTERM never
//!   waits on a client that is not sending.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::error::ApiError;

/// What `read_body` enforces.
pub struct BodyRules {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Turns true when the server starts shutting down.
    pub stopping: watch::Receiver<bool>,
}

pub async fn read_body(State(rules): State<Arc<BodyRules>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let refuse = |e: ApiError| crate::error::refuse(&path, e);
    let max = rules.max_bytes;
    let too_large = |what: String| {
        ApiError::too_large(
            "body_too_large",
            format!("request body {what} more than {max} bytes (--max-body-bytes)"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A client that sent `Expect: 100-continue` waits for the answer before sending; one
    // that did not is sending already, and closing on its unread bytes would reset the
    // connection before it reads the 413 (browsers, Python's http.client): it is drained
    // first, for a bounded time and amount.
    let expects = request.headers().contains_key(header::EXPECT);
    if let Some(n) = declared.filter(|&n| n > max as u64) {
        if !expects {
            drain(request.into_body(), max).await;
        }
        return close(refuse(too_large(format!("of {n} bytes (Content-Length) is"))));
    }
    let (parts, body) = request.into_parts();
    let mut stopping = rules.stopping.clone();
    let read = async {
        let mut body = body;
        let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::invalid("invalid_body", format!("could not read the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > max {
                    drop(bytes);
                    drain(body, max).await;
                    return Err(too_large("is".into()));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    };
    let outcome = tokio::select! {
        read = tokio::time::timeout(rules.timeout, read) => read.unwrap_or_else(|_| Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "body_timeout",
            format!("the request body did not arrive within {} s (--body-timeout)", rules.timeout.as_secs_f64()),
        ))),
        _ = stopping.wait_for(|s| *s) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "shutting_down",
            "the server is shutting down; retry on another replica",
        )),
    };
    match outcome {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) => close(refuse(e)),
    }
}

/// The rest of the body will not be read: the connection cannot carry another request.
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response.into_response()
}

/// Read and discard what the client is still sending, for at most two seconds and four
/// times the body limit, so it gets to read the refusal.
async fn drain(mut body: Body, max: usize) {
    let budget = max.saturating_mul(4);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > budget {
                break;
            }
        }
    })
    .await;
}
