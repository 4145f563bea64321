//! Model-specific knowledge: EmbeddingGemma's hyper-parameters and graph recipe.

mod builder;
mod config;

pub use builder::{add_weight, build_encoder, BuildError};
pub use config::{DenseHead, GemmaConfig, PoolingType, ARCH};
