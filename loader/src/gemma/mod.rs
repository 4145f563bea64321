//! Model-specific knowledge: EmbeddingGemma's hyper-parameters and graph recipe.

mod config;

pub use config::{DenseHead, GemmaConfig, PoolingType, ARCH};
