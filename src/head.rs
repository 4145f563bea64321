//! Pooling heads: what turns the encoder's per-token states into the result vectors.
//!
//! A head adds ops to the graph through a [`HeadBuilder`]. The default head
//! ([`SentenceTransformersHead`]: mean → dense_2 → dense_3 → L2) is built through exactly
//! this API; `examples/custom_head.rs` builds others (max pooling, per-token vectors) the same
//! way, without touching the crate's internals.

use gg_graph::{Graph, NodeId};
use gg_loader::gemma::{add_weight, GemmaConfig, PoolingType};
use gg_loader::gguf::Gguf;
use gg_ops::{Op, Rows};

pub use gg_ops::PoolKind;

use crate::Error;

/// A node of the graph under construction, as a head sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(NodeId);

/// Adds a head's ops on top of the encoder.
pub struct HeadBuilder<'a> {
    graph: &'a mut Graph,
    gguf: &'a Gguf,
    config: &'a GemmaConfig,
    hidden: NodeId,
    head: String,
}

impl<'a> HeadBuilder<'a> {
    pub(crate) fn new(
        graph: &'a mut Graph,
        gguf: &'a Gguf,
        config: &'a GemmaConfig,
        hidden: NodeId,
        head: String,
    ) -> Self {
        HeadBuilder {
            graph,
            gguf,
            config,
            hidden,
            head,
        }
    }

    fn err(&self, what: impl Into<String>) -> Error {
        Error::Head {
            head: self.head.clone(),
            what: what.into(),
        }
    }

    fn add(&mut self, op: Op, inputs: &[NodeId], label: &str) -> Result<Value, Error> {
        let label = format!("head.{label}");
        Ok(Value(self.graph.add(op, inputs, label, None)?))
    }

    /// The encoder output: one `d_model` row per token, after the final norm.
    pub fn hidden(&self) -> Value {
        Value(self.hidden)
    }

    /// The model's hyper-parameters (dims, dense heads present, pooling type...).
    pub fn config(&self) -> &GemmaConfig {
        self.config
    }

    /// Columns of a value.
    pub fn width(&self, v: Value) -> usize {
        self.graph.node(v.0).shape.cols
    }

    /// Whether a value has one row per token (else one per text).
    pub fn is_per_token(&self, v: Value) -> bool {
        self.graph.node(v.0).shape.rows == Rows::Tokens
    }

    /// Per-token rows → one row per text.
    pub fn pool(&mut self, x: Value, kind: PoolKind) -> Result<Value, Error> {
        if !self.is_per_token(x) {
            return Err(self.err("pool takes a per-token value"));
        }
        self.add(Op::Pool(kind), &[x.0], &format!("pool_{kind:?}").to_lowercase())
    }

    /// `x · Wᵀ` with a matrix of the model file (`[out, in]`, e.g. `dense_2.weight`).
    pub fn dense(&mut self, x: Value, tensor: &str) -> Result<Value, Error> {
        let info = self.gguf.tensor(tensor)?;
        let shape = info.shape();
        if shape.len() != 2 {
            return Err(self.err(format!("{tensor} has shape {shape:?}; a dense layer needs a matrix")));
        }
        let w = add_weight(self.graph, self.gguf, tensor, &shape, None)?;
        let label = tensor.trim_end_matches(".weight").to_string();
        self.add(Op::matmul(), &[x.0, w], &label)
    }

    /// Every row scaled to unit L2 norm.
    pub fn l2_normalize(&mut self, x: Value) -> Result<Value, Error> {
        self.add(Op::L2Norm, &[x.0], "l2_norm")
    }

    /// `x · factor`.
    pub fn scale(&mut self, x: Value, factor: f32) -> Result<Value, Error> {
        self.add(Op::Scale(factor), &[x.0], "scale")
    }

    pub(crate) fn node(v: Value) -> NodeId {
        v.0
    }
}

/// A pooling head. Implement it to get other vectors out of the same encoder.
pub trait PoolingHead: Send + Sync {
    /// A short name for dumps and errors.
    fn name(&self) -> &str;
    /// Add the head's ops and return the value to output: one row per text (a vector per
    /// text) or one row per token (a matrix per text).
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error>;
}

/// The sentence-transformers pipeline the model was trained with: the file's pooling type
/// (mean for EmbeddingGemma), every dense head the file has in order, then L2 normalization.
#[derive(Clone, Copy, Debug, Default)]
pub struct SentenceTransformersHead;

impl PoolingHead for SentenceTransformersHead {
    fn name(&self) -> &str {
        "sentence-transformers"
    }

    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        let kind = match b.config().pooling {
            PoolingType::Cls => PoolKind::First,
            PoolingType::Last => PoolKind::Last,
            PoolingType::Mean => PoolKind::Mean,
            // The file asks for per-token vectors: mean-pooling them anyway would be a guess.
            PoolingType::None => {
                return Err(b.err(
                    "the file's gemma-embedding.pooling_type is 0 (none: one vector per token); \
                     the sentence-transformers head pools, so load it with a per-token head instead",
                ))
            }
        };
        let mut x = b.pool(b.hidden(), kind)?;
        let dense: Vec<String> = b.config().dense.iter().map(|d| d.tensor.clone()).collect();
        for tensor in &dense {
            x = b.dense(x, tensor)?;
        }
        b.l2_normalize(x)
    }
}
