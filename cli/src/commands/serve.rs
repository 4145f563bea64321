//! `gemma-graph serve`: the OpenAI and TEI embedding APIs over HTTP (see the `gg-server`
//! crate). Logs one line per request to stderr.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gemma_graph::Pipeline;
use gg_server::{Limits, ServeConfig, Server};

use super::{load_model, ModelArgs};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file [default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache], or
    /// NAME=FILE, repeated to serve several models (each with its own queue; requests pick one
    /// by name: the `model` field of OpenAI/Ollama requests, the `x-model` header or gRPC
    /// metadata; the first answers requests that name none).
    #[arg(long, value_name = "[NAME=]FILE")]
    model: Vec<String>,
    #[command(flatten)]
    model_args: ModelArgs,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health [env: GEMMA_GRAPH_API_KEY].
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Allow browser requests from this origin (repeatable; default: no CORS headers).
    #[arg(long, value_name = "ORIGIN")]
    cors_allow_origin: Vec<String>,
    /// Name reported by /v1/models, /info and responses [default: the file's stem].
    #[arg(long)]
    model_name: Option<String>,
    /// Tokens per forward pass (texts from many requests are packed up to it).
    #[arg(long, default_value_t = 8192)]
    max_batch_tokens: usize,
    /// Milliseconds a batch waits to fill before it runs.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Tokens queued at most; a request past it gets 429 with Retry-After.
    #[arg(long, default_value_t = 262_144)]
    max_queue_tokens: usize,
    /// Texts (or token arrays) per request.
    #[arg(long, default_value_t = 2048)]
    max_inputs: usize,
    /// Request body size in bytes, checked before parsing.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Seconds a request may take; past it, 503 and its queued texts are dropped.
    #[arg(long, default_value_t = 300.0)]
    request_timeout: f64,
    /// Seconds a request's body may take to arrive; past it, 408.
    #[arg(long, default_value_t = 30.0)]
    body_timeout: f64,
    /// Seconds a request's head (request line and headers) may take to arrive.
    #[arg(long, default_value_t = 30.0)]
    header_timeout: f64,
    /// Connections open at once; past it, 503 and close [default: half the process's file
    /// descriptor limit less a reserve, at most 4096].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Accept requests for this Host (repeatable; `*`: any). Default: bound to loopback,
    /// loopback names only (a DNS-rebinding guard); bound elsewhere, any.
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
    /// Calibration embeddings (.npy, as `run -o FILE.npy` writes them) whose column ranges
    /// the int8/uint8 `dtype` of the embedding routes uses; without it those dtypes are refused.
    #[arg(long, value_name = "FILE.npy")]
    calibration: Option<std::path::PathBuf>,
    /// Keep the vectors of this many distinct token sequences and answer repeats from them
    /// (exactly what the model computes: vectors do not depend on the batch). 0: no cache.
    /// Each entry holds its ids and vector: at most ~11 KB (a full 2,048-token context).
    #[arg(long, value_name = "N", default_value_t = 0)]
    cache_entries: usize,
    /// The prompt of requests that name none (one of the model's: query, document, the task
    /// names), as TEI's flag of that name.
    #[arg(long, value_name = "NAME")]
    default_prompt_name: Option<String>,
    /// Also serve TEI's gRPC API (tei.v1: Info, Embed, Tokenize) on this port of --host: the
    /// same queue, limits, API key (metadata `authorization: Bearer KEY`) and metrics.
    #[arg(long, value_name = "PORT")]
    grpc_port: Option<u16>,
    /// A classifier head for /predict (repeatable): a safetensors file with `weight`
    /// [classes, 768] and `bias` [classes], labels in its metadata key "labels" (as
    /// `run --head` takes it); `:linear` for logits (then /predict's raw_scores works),
    /// `:linear-softmax` (default) for probabilities. Every model gets every head.
    #[arg(long, value_name = "NAME=FILE[:KIND]")]
    head: Vec<String>,
    /// Serve TEI's /embed_all (every token's state): loads each model a second time with a
    /// per-token head, its own queue (the file is mapped once; repacked weights are not shared).
    #[arg(long)]
    embed_all: bool,
}

/// `--NAME SECONDS` as a positive duration, or an error naming the flag.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!("--{flag} {value}: must be a positive number of seconds that fits a duration"),
    }
}

pub fn run(args: Args) -> Result<()> {
    let specs = model_specs(&args.model, args.model_name.as_deref())?;
    if args.max_batch_tokens == 0 || args.max_queue_tokens == 0 || args.max_inputs == 0 || args.max_body_bytes == 0 {
        bail!("--max-batch-tokens, --max-queue-tokens, --max-inputs and --max-body-bytes must be at least 1");
    }
    let request_timeout = seconds("request-timeout", args.request_timeout)?;
    let body_timeout = seconds("body-timeout", args.body_timeout)?;
    let header_timeout = seconds("header-timeout", args.header_timeout)?;
    if args.max_connections == Some(0) {
        bail!("--max-connections must be at least 1");
    }
    let api_key = api_key(&args.api_key)?;
    let calibration = args
        .calibration
        .as_deref()
        .map(|p| -> Result<gemma_graph::Ranges> {
            let (_, cols, values) = crate::stored::read_npy(p)?;
            gemma_graph::Ranges::from_calibration(&values, cols)
                .with_context(|| format!("--calibration {}", p.display()))
        })
        .transpose()?;
    let mut options = args.model_args.options(args.max_batch_tokens, Pipeline::Default);
    options.max_batch_tokens = args.max_batch_tokens;
    let heads = args.head.iter().map(|h| head_spec(h)).collect::<Result<Vec<_>>>()?;
    let linear: Vec<gemma_graph::LinearHead> = heads
        .iter()
        .map(|h| gemma_graph::LinearHead {
            name: h.name.clone(),
            softmax: h.softmax,
            ..gemma_graph::LinearHead::classifier(&h.file)
        })
        .collect();
    let mut models = Vec::with_capacity(specs.len());
    let mut token_states = Vec::new();
    for (name, path) in &specs {
        let model = if linear.is_empty() {
            load_model(path, &options)?
        } else {
            let mut all: Vec<&dyn gemma_graph::PoolingHead> = vec![&gemma_graph::SentenceTransformersHead];
            all.extend(linear.iter().map(|h| h as &dyn gemma_graph::PoolingHead));
            gemma_graph::Model::load_heads(path, &options, &all)?
        };
        models.push((name.clone(), Arc::new(model)));
        if args.embed_all {
            token_states.push(Arc::new(gemma_graph::Model::load_with(
                path,
                &options,
                &gemma_graph::TokenStatesHead,
            )?));
        }
    }
    let model_name = specs[0].0.clone();
    let config_has_key = api_key.is_some();
    let config = ServeConfig {
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_inputs: args.max_inputs,
            max_batch_tokens: args.max_batch_tokens,
            max_wait: Duration::from_millis(args.max_wait_ms),
            max_queue_tokens: args.max_queue_tokens,
            request_timeout,
            body_timeout,
            header_timeout,
            max_connections: args.max_connections,
        },
        api_key,
        cors_allow_origins: args.cors_allow_origin.clone(),
        allowed_hosts: args.allowed_host.clone(),
        model_name,
        encode: args.model_args.encode(),
        calibration,
        cache_entries: args.cache_entries,
        default_prompt_name: args.default_prompt_name.clone(),
        grpc_addr: args.grpc_port.map(|p| SocketAddr::new(args.host, p)),
        heads,
        token_states,
    };
    gg_server::fixed_mmap_threshold();
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let described: Vec<String> = specs
            .iter()
            .zip(&models)
            .map(|((name, path), (_, m))| {
                format!(
                    "{name}={} ({}, {})",
                    path.display(),
                    m.backend().name(),
                    m.precision().name()
                )
            })
            .collect();
        let threads = models[0].1.threads();
        let server = Server::bind_models(models, config, addr)
            .await
            .with_context(|| format!("starting the server on {addr}"))?;
        tracing::info!(
            address = %server.local_addr()?,
            models = %described.join(", "),
            threads,
            auth = if config_has_key { "bearer" } else { "none" },
            "serving"
        );
        server.run(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The models to serve, (name, file): `--model [NAME=]FILE` repeated (a bare FILE is named
/// by `--model-name`, else its stem), or the default model. Names must differ.
fn model_specs(args: &[String], model_name: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map_or_else(|| "embeddinggemma".into(), |s| s.to_string_lossy().into_owned())
    };
    let mut specs: Vec<(String, PathBuf)> = Vec::new();
    if args.is_empty() {
        let path = crate::input::model_path(None);
        specs.push((model_name.map_or_else(|| stem(&path), str::to_string), path));
    }
    for arg in args {
        let (name, path) = match arg.split_once('=') {
            // A name is a plain word; anything else with `=` in it is a path.
            Some((n, p)) if !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c)) => {
                (n.to_string(), PathBuf::from(p))
            }
            _ => {
                let path = PathBuf::from(arg);
                let name = match model_name {
                    Some(n) if args.len() == 1 => n.to_string(),
                    _ => stem(&path),
                };
                (name, path)
            }
        };
        if specs.iter().any(|(n, _)| *n == name) {
            bail!("--model: two models are called {name:?}; name them with NAME=FILE");
        }
        specs.push((name, path));
    }
    if model_name.is_some() && args.len() > 1 {
        bail!("--model-name names a single model; with several, give --model NAME=FILE");
    }
    for (_, path) in &specs {
        super::check_model_path(path)?;
    }
    Ok(specs)
}

/// `--head NAME=FILE[:linear|linear-softmax]`.
fn head_spec(arg: &str) -> Result<gg_server::HeadSpec> {
    let Some((name, rest)) = arg.split_once('=').filter(|(n, _)| !n.is_empty()) else {
        bail!("--head {arg:?}: give NAME=FILE[:linear|linear-softmax]");
    };
    let (file, softmax) = match rest.rsplit_once(':') {
        Some((f, "linear")) => (f, false),
        Some((f, "linear-softmax")) => (f, true),
        _ => (rest, true),
    };
    Ok(gg_server::HeadSpec {
        name: name.to_string(),
        file: PathBuf::from(file),
        softmax,
    })
}

/// The key from `--api-key` or, without the flag, `GEMMA_GRAPH_API_KEY`. An empty key is refused:
/// it is what an unset shell variable gives (`--api-key "$KEY"`), and serving without auth
/// while the operator asked for a key is the worse outcome.
fn api_key(flag: &Option<String>) -> Result<Option<String>> {
    let (key, from) = match flag {
        Some(k) => (Some(k.clone()), "--api-key"),
        None => (std::env::var("GEMMA_GRAPH_API_KEY").ok(), "GEMMA_GRAPH_API_KEY"),
    };
    match key {
        Some(k) if k.trim().is_empty() => {
            bail!("{from} is empty (an unset variable?): give a key, or leave it out to serve without authentication")
        }
        key => Ok(key),
    }
}

/// SIGINT or SIGTERM: stop accepting, finish in-flight requests, exit 0.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
