//! gemma-graph: text embeddings from EmbeddingGemma GGUF files, computed by a small graph
//! compiler (operator graph → passes → static buffer plan → scalar/SIMD kernels).
//!
//! ```no_run
//! use gemma_graph::{EmbedOptions, Model, Prompt};
//! let model = Model::load(gemma_graph::default_model_path())?;
//! let opts = EmbedOptions { prompt: Some(Prompt::Name("query".into())), ..Default::default() };
//! let out = model.embed(&["How do I bake bread?"], &opts)?;
//! assert_eq!(out.vector(0).len(), 768);
//! # Ok::<(), gemma_graph::Error>(())
//! ```

#![forbid(unsafe_code)]

mod chunk;
mod embed;
mod error;
pub mod head;
mod inputs;
pub mod model;
pub mod npy;
mod output;
mod output_dtype;
pub mod paths;
mod user_weights;

pub use chunk::{Chunk, ChunkOptions};
pub use embed::{CancelToken, EmbedOptions, PassInfo, PassLog, Profile};
pub use error::Error;
pub use gg_backends::{Arena, Backend, Batch, Precision, Prepared, SeqSpan, Unavailable};
pub use gg_graph::{CompiledGraph, Pipeline};
pub use gg_loader::gemma::{MATRYOSHKA_DIMS, PROMPTS};
pub use gg_loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization};
pub use head::{
    GeluKind, HeadBuilder, LinearHead, PoolKind, PoolingHead, SentenceTransformersHead, TokenStatesHead, Value,
};
pub use inputs::{Input, Prompt, Sequence, Sequencer, Truncation, MAX_TEXT_BYTES};
pub use model::{BackendChoice, HeadInfo, Model, ModelOptions, MAX_BATCH_TOKENS, MAX_TEXTS_PER_BATCH};
pub use output::{matryoshka, Embeddings, HeadRows, TextEmbedding};
pub use output_dtype::{quantize_row, stored_values, OutputDtype, Ranges, StoredValues};
pub use paths::{cache_dir, default_checkpoint_dir, default_model_path};
pub use user_weights::{UserTensor, UserWeights};

/// The crates behind the facade, for users who want the compiler's pieces.
pub use gg_backends as backends;
pub use gg_graph as graph;
pub use gg_loader as loader;
pub use gg_ops as ops;

// The model is shared across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
};
