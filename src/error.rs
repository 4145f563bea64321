//! The library's error type.

use crate::output::Embeddings;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] gg_loader::gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] gg_loader::tokenizer::TokenizerError),
    #[error(transparent)]
    Build(#[from] gg_loader::gemma::BuildError),
    #[error(transparent)]
    Graph(#[from] gg_graph::GraphError),
    #[error(transparent)]
    Exec(#[from] gg_backends::ExecError),
    #[error(transparent)]
    Weights(#[from] gg_backends::weights::WeightError),
    #[error(transparent)]
    Lower(#[from] gg_backends::LowerError),
    #[error(transparent)]
    Backend(#[from] gg_backends::Unavailable),
    #[error("the graph's weight {weight:?} does not match the model file: {what}")]
    GraphMismatch { weight: String, what: String },
    #[error("weight {weight:?} holds a NaN or infinite value (at element {element}): the file is corrupt")]
    NonFiniteWeight { weight: String, element: usize },
    #[error("text {index} gave a vector with NaN or infinite values; refusing to return it")]
    NonFiniteOutput { index: usize },
    #[error("saved graph: {0}")]
    PlanMismatch(String),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// An option of a call or a load out of its range: `option` is the field's name in
    /// `EmbedOptions`/`ChunkOptions` (surfaces name it their way: `--batch-texts`, `dimensions`).
    #[error("{option} {value} {why}")]
    BadOption {
        option: &'static str,
        value: String,
        why: String,
    },
    #[error("{file}: {what}")]
    UserWeights { file: String, what: String },
    #[error("pooling head {head:?}: {what}")]
    Head { head: String, what: String },
    #[error("text {index} has {tokens} tokens, more than the {max}-token batch this model was loaded for (ModelOptions::max_batch_tokens sets it)")]
    TextTooLong { index: usize, tokens: usize, max: usize },
    #[error("text {index} has {bytes} bytes (its prompt included), more than the {max} accepted (EmbedOptions::max_text_bytes; the CLI's --max-text-bytes)")]
    TextTooLarge { index: usize, bytes: usize, max: usize },
    #[error("input {index} has {tokens} tokens, more than the model's {context}-token context, and truncation is off")]
    WouldTruncate {
        index: usize,
        tokens: usize,
        context: usize,
    },
    #[error("input {index}: token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfVocabulary { index: usize, id: u32, vocab: usize },
    #[error("text {index} has no tokens (the model's tokenizer adds no BOS/EOS and the text is empty)")]
    EmptyText { index: usize },
    #[error("cancelled after {} of {total} texts", done.len())]
    Cancelled { done: Box<Embeddings>, total: usize },
    #[error("deadline passed after {} of {total} texts", done.len())]
    DeadlineExceeded { done: Box<Embeddings>, total: usize },
    #[error("thread pool: {0}")]
    ThreadPool(String),
}
