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

/// Longest context accepted from a file (RoPE tables and the default plan are sized by it).
pub const MAX_CONTEXT: usize = 131_072;
/// Most layers accepted from a file.
pub const MAX_LAYERS: usize = 1024;

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
        // Required: without it every layer would silently attend globally, which changes
        // every vector of a model trained with a window.
        let sliding_window = match g.get(&key("attention.sliding_window")) {
            Some(_) => Some(u("attention.sliding_window")?),
            None => {
                return Err(GgufError::MissingKey {
                    key: key("attention.sliding_window"),
                })
            }
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
        let config = GemmaConfig {
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
            global_layers: (0..n_layers.min(MAX_LAYERS))
                .map(|l| sliding_window.is_none() || l % GLOBAL_EVERY == GLOBAL_EVERY - 1)
                .collect(),
            sliding_window,
            pooling,
            dense,
            vocab_size: match g.get("tokenizer.ggml.tokens") {
                Some(crate::gguf::MetaValue::Array(a)) => a.len,
                _ => 0,
            },
        };
        config.check(g)?;
        Ok(config)
    }

    /// Every hyper-parameter the graph and its kernels depend on, checked against the others
    /// and against the file's tensors; an error names the key.
    fn check(&self, g: &Gguf) -> Result<(), GgufError> {
        let bad = |k: &str, value: String, expected: &'static str| GgufError::ValueOutOfRange {
            key: if k.starts_with("tokenizer.") {
                k.to_string()
            } else {
                format!("{ARCH}.{k}")
            },
            value,
            expected,
        };
        if self.n_layers > MAX_LAYERS {
            return Err(bad("block_count", self.n_layers.to_string(), "at most 1024 layers"));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad(
                "attention.head_count_kv",
                format!("{} (with {} query heads)", self.n_kv_heads, self.n_heads),
                "a divisor of attention.head_count",
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                "attention.key_length",
                self.head_dim.to_string(),
                "an even head size (RoPE rotates pairs)",
            ));
        }
        if self.context_length < 2 {
            return Err(bad(
                "context_length",
                self.context_length.to_string(),
                "at least 2 tokens (BOS and EOS)",
            ));
        }
        if self.context_length > MAX_CONTEXT {
            return Err(bad(
                "context_length",
                self.context_length.to_string(),
                "at most 131072 tokens",
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(bad(
                "attention.layer_norm_rms_epsilon",
                self.rms_eps.to_string(),
                "a finite positive number",
            ));
        }
        for (k, v) in [
            ("rope.freq_base", self.rope_base_global),
            ("rope.freq_base_swa", self.rope_base_local),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(k, v.to_string(), "a finite positive number"));
            }
        }
        if self.sliding_window == Some(0) {
            return Err(bad("attention.sliding_window", "0".into(), "a positive window"));
        }
        // The vocabulary: the token, score and type arrays describe the same pieces.
        if self.vocab_size == 0 {
            return Err(bad(
                "tokenizer.ggml.tokens",
                "missing or empty".into(),
                "the vocabulary's pieces",
            ));
        }
        for k in ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
            if let Some(crate::gguf::MetaValue::Array(a)) = g.get(k) {
                if a.len != self.vocab_size {
                    return Err(bad(
                        k,
                        format!("{} entries for {} tokens", a.len, self.vocab_size),
                        "one entry per token of tokenizer.ggml.tokens",
                    ));
                }
            }
        }
        // The layers: block_count says how many, the tensors must agree.
        let mut highest: Option<usize> = None;
        for t in g.tensors() {
            if let Some(l) = t
                .name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                highest = Some(highest.map_or(l, |h: usize| h.max(l)));
            }
        }
        let in_file = highest.map_or(0, |h| h + 1);
        if in_file != self.n_layers {
            return Err(bad(
                "block_count",
                format!("{} but the file has tensors for {in_file} blocks", self.n_layers),
                "the number of blk.N tensor groups in the file",
            ));
        }
        // Dense heads: the feature counts must be the tensors' shapes.
        for d in &self.dense {
            let shape = g.tensor(&d.tensor)?.shape();
            if shape != [d.out_features, d.in_features] {
                let name = d.tensor.trim_end_matches(".weight");
                return Err(GgufError::ValueOutOfRange {
                    key: format!("{ARCH}.{name}_feat_in/{name}_feat_out"),
                    value: format!(
                        "{} -> {} but {} is {:?} (out, in)",
                        d.in_features, d.out_features, d.tensor, shape
                    ),
                    expected: "the dense tensor's shape",
                });
            }
        }
        Ok(())
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
