//! Model-specific knowledge: EmbeddingGemma's hyper-parameters and graph recipe.

mod builder;
mod config;
mod prompts;

pub use builder::{add_weight, build_encoder, BuildError};
pub use config::{DenseHead, GemmaConfig, PoolingType, ARCH, MAX_CONTEXT, MAX_LAYERS};
pub use prompts::{MATRYOSHKA_DIMS, PROMPTS};
