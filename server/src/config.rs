//! What a server is configured with: its limits, its key and CORS origins, the model's name;
//! and a request's id.

use std::time::Duration;

/// Per-request and queue limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Request body size, checked before parsing.
    pub max_body_bytes: usize,
    /// Texts (or token arrays) per request.
    pub max_inputs: usize,
    /// Tokens per forward pass.
    pub max_batch_tokens: usize,
    /// How long a batch waits to fill.
    pub max_wait: Duration,
    /// Tokens queued at most across requests (past it: 429).
    pub max_queue_tokens: usize,
    /// A request not answered in this time gets 503 and its queued texts are dropped.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_inputs: 2048,
            max_batch_tokens: 8192,
            max_wait: Duration::from_millis(5),
            max_queue_tokens: 262_144,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// Everything `serve` needs besides the model.
#[derive(Clone, Debug, Default)]
pub struct ServeConfig {
    pub limits: Limits,
    /// Bearer token every route but `/health` requires.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors_allow_origins: Vec<String>,
    /// The name `/v1/models`, `/info` and responses report.
    pub model_name: String,
    /// How texts are tokenized (control literals, normalization).
    pub encode: gemma_graph::EncodeOptions,
}

/// The request's id: the client's `x-request-id` if it sent a sane one, else a counter.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);
