//! Errors as JSON: OpenAI's shape on `/v1` routes, Ollama's on `/api`, TEI's on the others.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API's error body to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error": {"message", "type", "code"}}`
    OpenAi,
    /// `{"error": message, "error_type": type}`
    Tei,
    /// `{"error": message}`
    Ollama,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: invalid_request_error, authentication_error, rate_limit_error, ...
    pub kind: &'static str,
    /// A stable machine-readable code (`context_length_exceeded`, `queue_full`, ...).
    pub code: &'static str,
    pub retry_after: Option<u64>,
    pub flavor: Flavor,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            code,
            retry_after: None,
            flavor: Flavor::OpenAi,
        }
    }

    /// 400: the request is wrong.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// 413: past a size limit.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    pub fn with_flavor(mut self, flavor: Flavor) -> ApiError {
        self.flavor = flavor;
        self
    }
}

/// The error flavor of a path's API: OpenAI's under `/v1`, Ollama's under `/api`, TEI's
/// elsewhere.
pub fn flavor_of(path: &str) -> Flavor {
    if path.starts_with("/v1") {
        Flavor::OpenAi
    } else if path.starts_with("/api/") {
        Flavor::Ollama
    } else {
        Flavor::Tei
    }
}

/// A refusal by a layer before any route ran, in the flavor of the path's API.
pub fn refuse(path: &str, e: ApiError) -> Response {
    e.with_flavor(flavor_of(path)).into_response()
}

/// An error response's message, for the layer that logs refusals.
#[derive(Clone, Debug)]
pub struct Message(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.flavor {
            Flavor::OpenAi => json!({
                "error": {"message": self.message, "type": self.kind, "code": self.code, "param": null}
            }),
            Flavor::Tei => json!({"error": self.message, "error_type": self.code}),
            Flavor::Ollama => json!({"error": self.message}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(Message(self.message));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
