pub mod convert;
pub mod dump;
pub mod inspect;
pub mod run;
pub mod search;
pub mod serve;
pub mod similarity;
pub mod tokenize;

use std::path::Path;

use anyhow::{bail, Result};
use gemma_graph::{
    Backend, BackendChoice, ControlLiterals, EncodeOptions, Model, ModelOptions, Pipeline, Precision,
    SentenceTransformersHead,
};

/// `--backend`: `auto`, or a tier by name (the library's list of tiers, `Backend::ALL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendArg(Option<Backend>);

impl BackendArg {
    pub fn choice(self) -> BackendChoice {
        self.0.map_or(BackendChoice::Auto, BackendChoice::Force)
    }
}

/// The values `--backend` takes, listed in `--help`.
pub fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendArg> {
    use clap::builder::TypedValueParser;
    let names = std::iter::once("auto").chain(Backend::ALL.iter().map(|b| b.name()));
    clap::builder::PossibleValuesParser::new(names.collect::<Vec<_>>())
        .map(|name| BackendArg(Backend::from_name(&name).ok()))
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fast,
    Exact,
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fast => Precision::Fast,
            PrecisionArg::Exact => Precision::Exact,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

/// How the model is loaded and run (shared by `run`, `search` and `similarity`).
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Kernel table ("auto": the best this CPU supports; GEMMA_GRAPH_BACKEND overrides it).
    #[arg(long, value_parser = backend_parser(), default_value = "auto")]
    pub backend: BackendArg,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Matmul arithmetic: "fast" (integer dot products, activations quantized per block to
    /// 16 bits; cosine ≥ 0.9999 with the exact answer), "exact" (f32 on exactly
    /// dequantized weights) or "int8" (activations in 8 bits as llama.cpp does: faster on
    /// AVX-512 VNNI, about as accurate as llama.cpp; avx512 with VNNI or scalar only).
    #[arg(long, value_enum, default_value = "fast")]
    pub precision: PrecisionArg,
    /// Tokenize control-token text such as "<bos>" as plain text: for untrusted input (the
    /// ids then differ from the reference tokenizer's for such texts).
    #[arg(long)]
    pub plain_control: bool,
    /// Read the model into memory instead of memory-mapping it (a file changed under a
    /// running process cannot crash it).
    #[arg(long)]
    pub no_mmap: bool,
}

impl ModelArgs {
    pub fn options(&self, max_batch_tokens: usize, passes: Pipeline) -> ModelOptions {
        ModelOptions {
            backend: self.backend.choice(),
            threads: self.threads,
            max_batch_tokens,
            passes,
            plan_holds_context: false,
            mmap: !self.no_mmap,
            precision: self.precision.into(),
        }
    }

    pub fn encode(&self) -> EncodeOptions {
        EncodeOptions {
            control_literals: if self.plain_control {
                ControlLiterals::PlainText
            } else {
                ControlLiterals::Special
            },
            ..Default::default()
        }
    }
}

/// A missing model file gets directions, not only "No such file".
pub fn check_model_path(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!(
            "no model file at {}: run scripts/fetch-model.sh to download and convert EmbeddingGemma-300M, \
             or give --model FILE.gguf (or set GEMMA_GRAPH_MODEL)",
            path.display()
        );
    }
    Ok(())
}

/// Load the model with the default sentence-transformers head.
pub fn load_model(path: &Path, options: &ModelOptions) -> Result<Model> {
    check_model_path(path)?;
    let model = Model::load_with(path, options, &SentenceTransformersHead)?;
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(model)
}
