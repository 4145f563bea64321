//! gemma-graph: text embeddings from EmbeddingGemma GGUF files.

pub mod paths;

pub use gg_loader as loader;
pub use gg_ops as ops;
pub use paths::{cache_dir, default_checkpoint_dir, default_model_path};
