//! EmbeddingGemma hyper-parameters, read from GGUF metadata only.

use serde::Serialize;

use crate::gguf::{Gguf, GgufError};

/// The architecture name this builder accepts.
pub const ARCH: &str = "gemma-embedding";

/// How the transformer's token states become one vector (GGUF `pooling_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PoolingType {
    None,
    Mean,
    Cls,
    Last,
}

/// One sentence-transformers Dense module stored in the GGUF (`dense_2`, `dense_3`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenseHead {
    pub tensor: String,
    pub in_features: usize,
    pub out_features: usize,
}

/// Everything the graph builder needs to know about the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GemmaConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    /// RoPE base of global (full-attention) layers.
    pub rope_base_global: f32,
    /// RoPE base of sliding-window layers.
    pub rope_base_local: f32,
    /// `attention.sliding_window` (total span); a query sees keys within half of it on each
    /// side. `None` when every layer is global.
    pub sliding_window: Option<usize>,
    /// Per layer: true when the layer attends globally.
    pub global_layers: Vec<bool>,
    pub pooling: PoolingType,
    /// Dense heads applied after pooling, in order (empty when the file has none).
    pub dense: Vec<DenseHead>,
    pub vocab_size: usize,
}

/// Gemma 3 interleaves five sliding-window layers with one global layer.
const GLOBAL_EVERY: usize = 6;

impl GemmaConfig {
    pub fn from_gguf(g: &Gguf) -> Result<GemmaConfig, GgufError> {
        let arch = g.str("general.architecture")?;
        if arch != ARCH {
            return Err(GgufError::ValueOutOfRange {
                key: "general.architecture".into(),
                value: format!("{arch:?}"),
                expected: "\"gemma-embedding\" (the only architecture this runtime builds)",
            });
        }
        let key = |k: &str| format!("{ARCH}.{k}");
        let u = |k: &str| g.u32(&key(k)).map(|v| v as usize);
        let n_layers = u("block_count")?;
        let d_model = u("embedding_length")?;
        let n_heads = u("attention.head_count")?;
        let head_dim = match g.get(&key("attention.key_length")) {
            Some(_) => u("attention.key_length")?,
            None => d_model / n_heads.max(1),
        };
        let sliding_window = match g.get(&key("attention.sliding_window")) {
            Some(_) => Some(u("attention.sliding_window")?),
            None => None,
        };
        let pooling = match g.get(&key("pooling_type")) {
            None => PoolingType::Mean,
            Some(_) => match u("pooling_type")? {
                0 => PoolingType::None,
                1 => PoolingType::Mean,
                2 => PoolingType::Cls,
                3 => PoolingType::Last,
                v => {
                    return Err(GgufError::ValueOutOfRange {
                        key: key("pooling_type"),
                        value: v.to_string(),
                        expected: "0 (none), 1 (mean), 2 (cls) or 3 (last)",
                    })
                }
            },
        };
        let mut dense = Vec::new();
        for name in ["dense_2", "dense_3"] {
            let tensor = format!("{name}.weight");
            if g.has_tensor(&tensor) {
                dense.push(DenseHead {
                    tensor,
                    in_features: u(&format!("{name}_feat_in"))?,
                    out_features: u(&format!("{name}_feat_out"))?,
                });
            }
        }
        let positive = |k: &str, v: usize| {
            if v == 0 {
                Err(GgufError::ValueOutOfRange {
                    key: key(k),
                    value: "0".into(),
                    expected: "a positive number",
                })
            } else {
                Ok(v)
            }
        };
        Ok(GemmaConfig {
            n_layers: positive("block_count", n_layers)?,
            d_model: positive("embedding_length", d_model)?,
            d_ff: positive("feed_forward_length", u("feed_forward_length")?)?,
            n_heads: positive("attention.head_count", n_heads)?,
            n_kv_heads: positive("attention.head_count_kv", u("attention.head_count_kv")?)?,
            head_dim: positive("attention.key_length", head_dim)?,
            context_length: positive("context_length", u("context_length")?)?,
            rms_eps: g.f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_base_global: g.f32(&key("rope.freq_base"))?,
            rope_base_local: match g.get(&key("rope.freq_base_swa")) {
                Some(_) => g.f32(&key("rope.freq_base_swa"))?,
                None => 10_000.0,
            },
            global_layers: (0..n_layers)
                .map(|l| sliding_window.is_none() || l % GLOBAL_EVERY == GLOBAL_EVERY - 1)
                .collect(),
            sliding_window,
            pooling,
            dense,
            vocab_size: match g.get("tokenizer.ggml.tokens") {
                Some(crate::gguf::MetaValue::Array(a)) => a.len,
                _ => 0,
            },
        })
    }

    /// The largest |i − j| a sliding-window layer lets a query see.
    pub fn local_reach(&self) -> Option<usize> {
        self.sliding_window.map(|w| w / 2)
    }

    /// The size of the final embedding (after the dense heads).
    pub fn embedding_dim(&self) -> usize {
        self.dense.last().map_or(self.d_model, |d| d.out_features)
    }
}
