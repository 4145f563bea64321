//! Pooling heads: what turns the encoder's per-token states into the result vectors.
//!
//! A head adds ops to the graph through a [`HeadBuilder`]. The default head
//! ([`SentenceTransformersHead`]: mean → dense_2 → dense_3 → L2) is built through exactly
//! this API; `examples/custom_head.rs` builds others (max pooling, per-token vectors) the same
//! way, without touching the crate's internals.

use std::path::Path;

use gg_graph::{Graph, NodeId, WeightDesc, WeightSource};
use gg_loader::gemma::{add_weight, GemmaConfig, PoolingType};
use gg_loader::gguf::Gguf;
use gg_ops::{DType, Op, Rows, Shape, UnaryOp};

pub use gg_ops::PoolKind;

use crate::user_weights::UserWeights;
use crate::Error;

/// GELU's two forms: the tanh approximation (Gemma's, `gelu_pytorch_tanh`) or the exact
/// erf form (torch's `nn.GELU()` default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluKind {
    Tanh,
    Erf,
}

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
    /// Label prefix of this head's nodes (`head` for the first head, `head.NAME` after).
    prefix: String,
    user: &'a mut UserWeights,
    /// Files this head loaded, searched in order for tensor names.
    files: Vec<String>,
}

impl<'a> HeadBuilder<'a> {
    pub(crate) fn new(
        graph: &'a mut Graph,
        gguf: &'a Gguf,
        config: &'a GemmaConfig,
        hidden: NodeId,
        head: String,
        prefix: String,
        user: &'a mut UserWeights,
    ) -> Self {
        HeadBuilder {
            graph,
            gguf,
            config,
            hidden,
            head,
            prefix,
            user,
            files: Vec::new(),
        }
    }

    fn err(&self, what: impl Into<String>) -> Error {
        Error::Head {
            head: self.head.clone(),
            what: what.into(),
        }
    }

    fn add(&mut self, op: Op, inputs: &[NodeId], label: &str) -> Result<Value, Error> {
        let name = op.name();
        let label = format!("{}.{label}", self.prefix);
        self.graph
            .add(op, inputs, label, None)
            .map(Value)
            .map_err(|e| self.err(format!("{name}: {e}")))
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

    /// The head's name (errors and dumps use it).
    pub fn head_name(&self) -> &str {
        &self.head
    }

    pub(crate) fn node(v: Value) -> NodeId {
        v.0
    }

    /// Make the tensors of a weight file available to this head by name: a safetensors file,
    /// or an `.npy` array (named by its file stem). F32, F64, F16 and BF16 are read as f32.
    /// Returns the tensor names.
    pub fn weights_from(&mut self, path: impl AsRef<Path>) -> Result<Vec<String>, Error> {
        let (file, names) = self.user.load(path.as_ref())?;
        if !self.files.contains(&file) {
            self.files.push(file);
        }
        Ok(names)
    }

    /// A value of the safetensors metadata of a file this head loaded (e.g. `"labels"`).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.files.iter().find_map(|f| self.user.metadata(f, key))
    }

    /// A tensor of the loaded files as a weight node, checked to be `[rows, cols]`
    /// (`rows == 1` for vectors).
    fn user_weight(&mut self, op: &str, name: &str, rows: usize, cols: usize) -> Result<NodeId, Error> {
        let Some((file, t)) = self
            .files
            .iter()
            .find_map(|f| self.user.get(f, name).map(|t| (f.clone(), t)))
        else {
            let known: Vec<String> = self.files.clone();
            return Err(self.err(format!(
                "{op}: no tensor {name:?} in the head's weight files ({})",
                if known.is_empty() {
                    "none loaded: call weights_from first".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        if (t.rows, t.cols) != (rows, cols) {
            return Err(self.err(format!(
                "{op}: tensor {name:?} of {file} is [{}, {}], the op needs [{rows}, {cols}]",
                t.rows, t.cols
            )));
        }
        Ok(self.graph.weight(
            WeightDesc {
                source: WeightSource::User {
                    file,
                    tensor: name.to_string(),
                },
                dtype: DType::F32,
                shape: Shape::fixed(rows, cols),
            },
            None,
        ))
    }

    /// Rows of a loaded tensor (its output size, for a matrix).
    /// Rows of a tensor of the loaded files: at least one (a layer with no outputs would
    /// give rows of zero values, and no class to name).
    fn user_rows(&self, op: &str, name: &str) -> Result<usize, Error> {
        let rows = self
            .files
            .iter()
            .find_map(|f| self.user.get(f, name))
            .map(|t| t.rows)
            .ok_or_else(|| self.err(format!("{op}: no tensor {name:?} in the head's weight files")))?;
        if rows == 0 {
            return Err(self.err(format!(
                "{op}: tensor {name:?} has 0 rows; a layer needs at least one output"
            )));
        }
        Ok(rows)
    }

    /// `x · Wᵀ (+ bias)` with a `[out, in]` matrix (and a `[out]` vector) of the loaded files
    /// — torch's `nn.Linear`, scikit-learn's `coef_` and `intercept_`.
    pub fn linear(&mut self, x: Value, weight: &str, bias: Option<&str>) -> Result<Value, Error> {
        let n_in = self.width(x);
        let n_out = self.user_rows("linear", weight)?;
        let w = self.user_weight("linear", weight, n_out, n_in)?;
        let mut y = self.add(Op::matmul(), &[x.0, w], &format!("linear.{weight}"))?;
        if let Some(b) = bias {
            let b = self.user_weight("linear bias", b, 1, n_out)?;
            y = self.add(Op::AddBias, &[y.0, b], "add_bias")?;
        }
        Ok(y)
    }

    /// `b` (a `[cols]` vector of the loaded files) added to every row.
    pub fn add_bias(&mut self, x: Value, bias: &str) -> Result<Value, Error> {
        let cols = self.width(x);
        let b = self.user_weight("add_bias", bias, 1, cols)?;
        self.add(Op::AddBias, &[x.0, b], "add_bias")
    }

    /// Layer normalization of each row, times `weight`, plus `bias` (`[cols]` vectors of the
    /// loaded files).
    pub fn layer_norm(&mut self, x: Value, weight: &str, bias: &str, eps: f32) -> Result<Value, Error> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(self.err(format!("layer_norm: eps {eps} must be positive")));
        }
        let cols = self.width(x);
        let w = self.user_weight("layer_norm", weight, 1, cols)?;
        let b = self.user_weight("layer_norm", bias, 1, cols)?;
        self.add(Op::LayerNorm { eps }, &[x.0, w, b], "layer_norm")
    }

    pub fn silu(&mut self, x: Value) -> Result<Value, Error> {
        self.add(Op::Unary(UnaryOp::Silu), &[x.0], "silu")
    }

    pub fn gelu(&mut self, x: Value, kind: GeluKind) -> Result<Value, Error> {
        match kind {
            GeluKind::Tanh => self.add(Op::Gelu, &[x.0], "gelu"),
            GeluKind::Erf => self.add(Op::Unary(UnaryOp::GeluErf), &[x.0], "gelu_erf"),
        }
    }

    pub fn tanh(&mut self, x: Value) -> Result<Value, Error> {
        self.add(Op::Unary(UnaryOp::Tanh), &[x.0], "tanh")
    }

    pub fn relu(&mut self, x: Value) -> Result<Value, Error> {
        self.add(Op::Unary(UnaryOp::Relu), &[x.0], "relu")
    }

    /// Each row to probabilities.
    pub fn softmax(&mut self, x: Value) -> Result<Value, Error> {
        self.add(Op::Softmax, &[x.0], "softmax")
    }

    /// Two values' rows side by side (e.g. mean ‖ max pooling); both per text or both per
    /// token.
    pub fn concat(&mut self, a: Value, b: Value) -> Result<Value, Error> {
        if self.is_per_token(a) != self.is_per_token(b) {
            return Err(self.err("concat: one value is per token, the other per text"));
        }
        self.add(Op::ConcatCols, &[a.0, b.0], "concat")
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

/// The encoder's per-token states (after its final norm): one `d_model` row per token, what
/// TEI's `/embed_all` answers and what token-level tasks start from.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenStatesHead;

impl PoolingHead for TokenStatesHead {
    fn name(&self) -> &str {
        "token-states"
    }

    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        Ok(b.hidden())
    }
}

/// A linear layer (and optionally a softmax) trained on the model's embeddings, read from a
/// weight file: the sentence-transformers embedding → `x · Wᵀ + b` → softmax. What a
/// scikit-learn `LogisticRegression` (`coef_`, `intercept_`) or a torch `nn.Linear` saved as
/// safetensors gives.
#[derive(Clone, Debug)]
pub struct LinearHead {
    pub name: String,
    pub path: std::path::PathBuf,
    /// Tensor names of `W [classes, dim]` and `b [classes]` in the file.
    pub weight: String,
    pub bias: Option<String>,
    /// Probabilities (softmax over the outputs) instead of logits.
    pub softmax: bool,
}

impl LinearHead {
    /// A classifier head from a file holding `weight` and `bias` tensors.
    pub fn classifier(path: impl Into<std::path::PathBuf>) -> LinearHead {
        LinearHead {
            name: "classifier".into(),
            path: path.into(),
            weight: "weight".into(),
            bias: Some("bias".into()),
            softmax: true,
        }
    }
}

impl PoolingHead for LinearHead {
    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        b.weights_from(&self.path)?;
        let x = SentenceTransformersHead.build(b)?;
        let y = b.linear(x, &self.weight, self.bias.as_deref())?;
        if self.softmax {
            b.softmax(y)
        } else {
            Ok(y)
        }
    }
}
