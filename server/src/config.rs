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
    /// The whole body must arrive within this time (past it: 408).
    pub body_timeout: Duration,
    /// The request head must arrive within this time (past it: the connection is closed).
    pub header_timeout: Duration,
    /// Connections open at once (past it: 503 and close); `None`: from the process's file
    /// descriptor limit ([`default_max_connections`]).
    pub max_connections: Option<usize>,
}

/// Half the file descriptors the process may open, less a reserve for the model file, logs,
/// the runtime and the refusals past the cap (each connection holds two: its socket and the
/// hang-up watcher's handle), at most 4,096; 512 where the limit cannot be read.
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit through a valid pointer to a local.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let fds = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
            return (fds.saturating_sub(64 + crate::conn::REFUSALS) / 2).clamp(1, 4096);
        }
    }
    512
}

/// For a server process, called before its threads start: allocations of 1 MiB and more get
/// their own mapping, returned to the system when freed. glibc's default raises that threshold
/// to the largest block freed so far (up to 32 MiB), so after one 12 MB request body every
/// later one lands in a heap arena that keeps its pages: RSS climbed by hundreds of MiB under
/// large requests and stayed there (`cli/tests/soak.rs`). A no-op off glibc.
pub fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter (no pointers); any thread may call it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
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
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            max_connections: None,
        }
    }
}

/// Everything `serve` needs besides the model.
#[derive(Clone, Default)]
pub struct ServeConfig {
    pub limits: Limits,
    /// Bearer token every route but `/health` requires.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors_allow_origins: Vec<String>,
    /// Host header values accepted (`*`: any). Empty: loopback names only when bound to a
    /// loopback address (a DNS-rebinding guard), any otherwise.
    pub allowed_hosts: Vec<String>,
    /// The name `/v1/models`, `/info` and responses report.
    pub model_name: String,
    /// How texts are tokenized (control literals, normalization).
    pub encode: gemma_graph::EncodeOptions,
    /// The prompt (one of the model's names) of requests that give none (TEI's
    /// `--default-prompt-name`).
    pub default_prompt_name: Option<String>,
    /// Classifier heads the models were loaded with (after the embedding head, in this order):
    /// what `/predict` answers with.
    pub heads: Vec<HeadSpec>,
    /// Per served model (same order), the same file loaded with `TokenStatesHead` for
    /// `/embed_all` (`--embed-all`); empty: no `/embed_all`.
    pub token_states: Vec<std::sync::Arc<gemma_graph::Model>>,
    /// Where to serve TEI's gRPC API as well (`--grpc-port`).
    pub grpc_addr: Option<std::net::SocketAddr>,
    /// Finished vectors kept by token sequence (0: no cache).
    pub cache_entries: usize,
    /// Column ranges for the int8/uint8 `dtype`s, from calibration embeddings.
    pub calibration: Option<gemma_graph::Ranges>,
}

/// The request's id: the client's `x-request-id` if it sent a sane one, else a counter.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A classifier head (`serve --head NAME=FILE[:kind]`): the model was loaded with
/// `gemma_graph::LinearHead { name, path: file, softmax, .. }` after its embedding head.
#[derive(Clone, Debug)]
pub struct HeadSpec {
    pub name: String,
    pub file: std::path::PathBuf,
    /// The head outputs probabilities (`linear-softmax`), else logits (`linear`).
    pub softmax: bool,
}
