//! Several models in one server (`serve --model NAME=FILE`, repeated): each has its own queue,
//! model thread, cache and metrics (`AppState`); a request picks one by name — the header
//! `x-model` (any route, gRPC metadata too), else the JSON body's `model` field (OpenAI's and
//! Ollama's routes) — or gets the first. With one model any name selects it, as OpenAI
//! clients send names of their own; with several an unknown name is a 404 naming the known ones.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;

use crate::api::AppState;
use crate::error::ApiError;

pub struct Models {
    /// In the order given; the first answers requests that name none.
    pub states: Vec<Arc<AppState>>,
}

impl Models {
    pub fn first(&self) -> &Arc<AppState> {
        &self.states[0]
    }

    /// The model called `name` (none: the first).
    pub fn get(&self, name: Option<&str>) -> Result<&Arc<AppState>, ApiError> {
        match name {
            None => Ok(self.first()),
            Some(_) if self.states.len() == 1 => Ok(self.first()),
            Some(name) => self.states.iter().find(|s| s.model_name == name).ok_or_else(|| {
                let known: Vec<&str> = self.states.iter().map(|s| s.model_name.as_str()).collect();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!("no model {name:?} here; this server has {}", known.join(", ")),
                )
            }),
        }
    }

    pub fn all_warm(&self) -> bool {
        self.states.iter().all(|s| s.is_warm())
    }
}

/// Only the field that picks the model; the rest of the body is the route's to read.
#[derive(Deserialize)]
struct ModelField {
    model: Option<serde_json::Value>,
}

/// Middleware (after the body is read and bounded): puts the request's model in its
/// extensions for the route. The body is looked at only when several models are served.
pub async fn choose(State(models): State<Arc<Models>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let header = request
        .headers()
        .get("x-model")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = request.into_parts();
    let (name, body) = match header {
        Some(h) => (Some(h), body),
        None if models.states.len() > 1 && (path.starts_with("/v1/") || path.starts_with("/api/")) => {
            // Already read into memory by the body layer: this only takes it back.
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let name = serde_json::from_slice::<ModelField>(&bytes)
                .ok()
                .and_then(|f| f.model)
                .and_then(|m| m.as_str().map(str::to_string));
            (name, Body::from(bytes))
        }
        None => (None, body),
    };
    match models.get(name.as_deref()) {
        Ok(state) => {
            let mut request = Request::from_parts(parts, body);
            request.extensions_mut().insert(Arc::clone(state));
            next.run(request).await
        }
        Err(e) => crate::error::refuse(&path, e),
    }
}
