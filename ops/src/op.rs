//! The closed operator set. Passes and kernels `match` on [`Op`] exhaustively; there is no
//! `dyn Op`.
//!
//! Every value is a matrix whose row count is either the batch's token count `T`, its
//! sequence count `S`, or fixed, and whose column count is fixed: that is all EmbeddingGemma
//! needs, and it keeps shape inference and planning exact.

use serde::{Deserialize, Serialize};

use crate::DType;

/// The row count of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rows {
    /// One row per token of the batch (symbolic `T`).
    Tokens,
    /// One row per sequence of the batch (symbolic `S`).
    Seqs,
    Fixed(usize),
}

/// Shape `[rows, cols]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    pub rows: Rows,
    pub cols: usize,
}

impl Shape {
    pub const fn tokens(cols: usize) -> Shape {
        Shape {
            rows: Rows::Tokens,
            cols,
        }
    }
    pub const fn seqs(cols: usize) -> Shape {
        Shape { rows: Rows::Seqs, cols }
    }
    pub const fn fixed(rows: usize, cols: usize) -> Shape {
        Shape {
            rows: Rows::Fixed(rows),
            cols,
        }
    }

    /// Concrete row count for a batch of `tokens` tokens in `seqs` sequences.
    pub fn rows_for(&self, tokens: usize, seqs: usize) -> usize {
        match self.rows {
            Rows::Tokens => tokens,
            Rows::Seqs => seqs,
            Rows::Fixed(n) => n,
        }
    }

    /// Element count for a batch.
    pub fn elements_for(&self, tokens: usize, seqs: usize) -> usize {
        self.rows_for(tokens, seqs) * self.cols
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rows {
            Rows::Tokens => write!(f, "[T, {}]", self.cols),
            Rows::Seqs => write!(f, "[S, {}]", self.cols),
            Rows::Fixed(n) => write!(f, "[{n}, {}]", self.cols),
        }
    }
}

/// Values the executor writes at the start of each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InputKind {
    /// Token ids, `[T, 1]` i32.
    TokenIds,
    /// Position of each token inside its sequence (restarting at 0), `[T, 1]` i32.
    Positions,
}

/// How per-token rows become one row per sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PoolKind {
    Mean,
    /// The first token of each sequence (CLS-style).
    First,
    /// The last token of each sequence.
    Last,
    /// Element-wise maximum over the sequence.
    Max,
}

/// Index of a weight in the graph's weight table.
pub type WeightId = usize;

/// One operator. Inputs are listed with their shapes; `R` is any row count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A per-batch input.
    Input(InputKind),
    /// A weight from the weight table.
    Weight(WeightId),
    /// `(ids [T,1] i32, table [V, D]) -> [T, D]`: gather rows, times `scale`.
    Embed { scale: f32 },
    /// `(x [R, C], w [1, group]) -> [R, C]`: every `group` consecutive columns are one RMS
    /// group (`group == C` for a plain norm, the head size for per-head norms).
    RmsNorm { eps: f32, group: usize },
    /// `(x [R, K], [w [1, K],] W [N, K]) -> [R, N]`: `x · Wᵀ`, the one matmul form; the
    /// spec's options are set by fusion passes (see [`MatMulSpec`]).
    MatMul(MatMulSpec),
    /// `(x [T, H·hd], pos [T,1]) -> [T, H·hd]`: NEOX rotary embedding (element `i` pairs
    /// with `i + hd/2`), angle `pos · base^(−2i/hd)`.
    Rope { base: f32, head_dim: usize },
    /// `(q [T, H·hd], k [T, KV·hd], v [T, KV·hd]) -> [T, H·hd]`: softmax(q·kᵀ·scale)·v per
    /// head, query head `h` reading kv head `h / (H/KV)`; never across sequences; with
    /// `window = Some(w)`, only keys with |i − j| ≤ w. With `packed`, one input
    /// `qkv [T, (H + 2·KV)·hd]` holds q, k and v side by side in each row, and the output
    /// `[T, (H + 2·KV)·hd]` (in place) has the result in each row's first H·hd columns.
    Attention {
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
        scale: f32,
        window: Option<usize>,
        packed: bool,
    },
    /// `x -> gelu_tanh(x)`.
    Gelu,
    /// `(a, b) -> a + b`, same shapes.
    Add,
    /// `(a, b) -> a ⊙ b`, same shapes.
    Mul,
    /// `x -> x · factor`.
    Scale(f32),
    /// `[T, D] -> [S, D]`.
    Pool(PoolKind),
    /// Each row divided by its L2 norm.
    L2Norm,
    /// `(x [R, C], w [1, C], b [1, C]) -> [R, C]`: `(x − mean) / sqrt(var + eps) ⊙ w + b`
    /// per row (population variance, as torch's `LayerNorm`).
    LayerNorm { eps: f32 },
    /// `(x [R, C], b [1, C]) -> [R, C]`: `b` added to every row.
    AddBias,
    /// `x -> f(x)` element-wise.
    Unary(UnaryOp),
    /// Each row to `exp(x − max) / Σ exp(x − max)`.
    Softmax,
    /// `(a [R, C₁], b [R, C₂]) -> [R, C₁ + C₂]`: rows side by side.
    ConcatCols,

    // ---- Fused ops (made by compiler passes, never by model builders) ----
    /// `(x [R, C]) -> [R, len]`: columns `start..start + len`.
    SliceCols { start: usize, len: usize },
    /// `(x [T, H·hd], w [1, hd], pos [T,1]) -> [T, H·hd]`: per-head RMSNorm, then RoPE. With
    /// `cols = Some((start, len))`, only those columns of a wider `x [T, W]` are transformed
    /// and the output is the whole `[T, W]` (in place on a packed q|k|v row).
    RmsNormRope {
        eps: f32,
        head_dim: usize,
        base: f32,
        cols: Option<(usize, usize)>,
    },
    /// `(x [R, C or 2C], a [R, C], w [1, C]) -> [R, C]`: `x + rmsnorm(a) ⊙ w` (Gemma's
    /// post-norm and residual add in one pass); `x` is read from its first C columns.
    AddRmsNorm { eps: f32 },
    /// `(x [R, C or 2C], a [R, C], w₁ [1, C], w₂ [1, C]) -> [R, 2C]`: with
    /// `s = x + rmsnorm(a) ⊙ w₁`, the row `[s | rmsnorm(s) ⊙ w₂]` — the residual add fused
    /// with the norm before it and the norm after it, one pass over the hidden state. The
    /// next residual reads columns `0..C`, the next matmul columns `C..2C`.
    ResidualNorm { eps: f32 },
    /// `(x [T, D], W₁ [N₁, D], …, W_n) -> [S, N_n]`: pool, the dense layers, then L2
    /// normalization if `normalize`.
    PoolHead {
        kind: PoolKind,
        n_dense: usize,
        normalize: bool,
    },
}

/// Element-wise functions of head ops (GELU with tanh is [`Op::Gelu`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `x · sigmoid(x)`.
    Silu,
    /// `x · Φ(x)`, Φ the normal CDF through `erf` (torch's default `GELU`).
    GeluErf,
    Tanh,
    /// `max(x, 0)`.
    Relu,
}

/// What a matmul does around `x · Wᵀ`. The default is the plain product.
///
/// With `norm_eps`, `x` is first `rmsnorm(x) ⊙ w` (an extra input `w [1, K]` before `W`);
/// with `geglu`, `W` stacks gate and up rows and the output is `gelu_tanh(gate) ⊙ up`
/// (`[R, N/2]`); with `in_cols = Some((start, k))` the activations are columns
/// `start..start + k` of a wider `x` (no norm then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatMulSpec {
    pub norm_eps: Option<f32>,
    pub geglu: bool,
    pub in_cols: Option<(usize, usize)>,
}

impl MatMulSpec {
    pub const PLAIN: MatMulSpec = MatMulSpec {
        norm_eps: None,
        geglu: false,
        in_cols: None,
    };

    pub fn is_plain(&self) -> bool {
        *self == MatMulSpec::PLAIN
    }
}

impl Op {
    /// The plain matmul `x · Wᵀ`.
    pub const fn matmul() -> Op {
        Op::MatMul(MatMulSpec::PLAIN)
    }
}

/// Why an op cannot take the inputs it was given.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{op}: {what}")]
pub struct ShapeError {
    pub op: &'static str,
    pub what: String,
}

type Typed = (DType, Shape);

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(InputKind::TokenIds) => "input.token_ids",
            Op::Input(InputKind::Positions) => "input.positions",
            Op::Weight(_) => "weight",
            Op::Embed { .. } => "embed",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Rope { .. } => "rope",
            Op::Attention { .. } => "attention",
            Op::Gelu => "gelu",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Scale(_) => "scale",
            Op::Pool(PoolKind::Mean) => "pool.mean",
            Op::Pool(PoolKind::First) => "pool.first",
            Op::Pool(PoolKind::Last) => "pool.last",
            Op::Pool(PoolKind::Max) => "pool.max",
            Op::L2Norm => "l2_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::AddBias => "add_bias",
            Op::Unary(UnaryOp::Silu) => "silu",
            Op::Unary(UnaryOp::GeluErf) => "gelu_erf",
            Op::Unary(UnaryOp::Tanh) => "tanh",
            Op::Unary(UnaryOp::Relu) => "relu",
            Op::Softmax => "softmax",
            Op::ConcatCols => "concat_cols",
            Op::SliceCols { .. } => "slice_cols",
            Op::RmsNormRope { .. } => "rms_norm_rope",
            Op::AddRmsNorm { .. } => "add_rms_norm",
            Op::ResidualNorm { .. } => "residual_norm",
            Op::MatMul(MatMulSpec {
                norm_eps: None,
                geglu: false,
                ..
            }) => "matmul",
            Op::MatMul(MatMulSpec {
                norm_eps: Some(_),
                geglu: false,
                ..
            }) => "norm_matmul",
            Op::MatMul(MatMulSpec {
                norm_eps: None,
                geglu: true,
                ..
            }) => "matmul_geglu",
            Op::MatMul(MatMulSpec {
                norm_eps: Some(_),
                geglu: true,
                ..
            }) => "norm_matmul_geglu",
            Op::PoolHead { .. } => "pool_head",
        }
    }

    /// Number of inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input(_) | Op::Weight(_) => 0,
            Op::Gelu | Op::Scale(_) | Op::Pool(_) | Op::L2Norm | Op::SliceCols { .. } | Op::Unary(_) | Op::Softmax => 1,
            Op::Embed { .. }
            | Op::RmsNorm { .. }
            | Op::Rope { .. }
            | Op::Add
            | Op::Mul
            | Op::AddBias
            | Op::ConcatCols => 2,
            Op::LayerNorm { .. } => 3,
            Op::Attention { packed: true, .. } => 1,
            Op::Attention { .. } | Op::RmsNormRope { .. } | Op::AddRmsNorm { .. } => 3,
            Op::ResidualNorm { .. } => 4,
            Op::MatMul(m) => 2 + usize::from(m.norm_eps.is_some()),
            Op::PoolHead { n_dense, .. } => 1 + n_dense,
        }
    }

    /// The input whose buffer the output may reuse (when nothing else reads it later).
    pub fn in_place_input(&self) -> Option<usize> {
        match self {
            Op::RmsNorm { .. }
            | Op::Rope { .. }
            | Op::Gelu
            | Op::Add
            | Op::Mul
            | Op::Scale(_)
            | Op::L2Norm
            | Op::LayerNorm { .. }
            | Op::AddBias
            | Op::Unary(_)
            | Op::Softmax
            | Op::RmsNormRope { .. }
            | Op::AddRmsNorm { .. }
            | Op::ResidualNorm { .. }
            | Op::Attention { packed: true, .. } => Some(0),
            Op::Input(_)
            | Op::Weight(_)
            | Op::Embed { .. }
            | Op::MatMul(_)
            | Op::Attention { .. }
            | Op::Pool(_)
            | Op::SliceCols { .. }
            | Op::ConcatCols
            | Op::PoolHead { .. } => None,
        }
    }

    /// Output dtype and shape from the inputs'. Weight and input nodes carry their own type,
    /// so they are not inferred here.
    pub fn infer(&self, inputs: &[Typed]) -> Result<Typed, ShapeError> {
        let err = |what: String| ShapeError { op: self.name(), what };
        if inputs.len() != self.arity() {
            return Err(err(format!("takes {} inputs, got {}", self.arity(), inputs.len())));
        }
        let f32_act = |i: usize| -> Result<Shape, ShapeError> {
            let (d, s) = inputs[i];
            if d != DType::F32 {
                return Err(err(format!("input {i} must be f32, is {d}")));
            }
            Ok(s)
        };
        let weight_dtype = |i: usize| -> Result<(), ShapeError> {
            match inputs[i].0 {
                d if d.is_weight_type() => Ok(()),
                d => Err(err(format!("input {i} must be a float or quantized weight, is {d}"))),
            }
        };
        match self {
            Op::Input(_) | Op::Weight(_) => Err(err("inputs and weights are typed by their node".into())),
            Op::Embed { .. } => {
                let (d, ids) = inputs[0];
                if d != DType::I32 || ids != Shape::tokens(1) {
                    return Err(err(format!("ids must be i32 [T, 1], are {d} {ids}")));
                }
                weight_dtype(1)?;
                Ok((DType::F32, Shape::tokens(inputs[1].1.cols)))
            }
            Op::RmsNorm { group, .. } => {
                let x = f32_act(0)?;
                let w = f32_act(1)?;
                if *group == 0 || x.cols % group != 0 || w != Shape::fixed(1, *group) {
                    return Err(err(format!("x {x} with weight {w} and group {group}")));
                }
                Ok((DType::F32, x))
            }
            Op::Rope { head_dim, .. } => {
                let x = f32_act(0)?;
                let (d, pos) = inputs[1];
                if x.rows != Rows::Tokens || *head_dim == 0 || head_dim % 2 != 0 || x.cols % head_dim != 0 {
                    return Err(err(format!("x {x} with head dim {head_dim}")));
                }
                if d != DType::I32 || pos != Shape::tokens(1) {
                    return Err(err(format!("positions must be i32 [T, 1], are {d} {pos}")));
                }
                Ok((DType::F32, x))
            }
            Op::Attention {
                n_heads,
                n_kv_heads,
                head_dim,
                packed: true,
                ..
            } => {
                let qkv = f32_act(0)?;
                if *n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
                    return Err(err(format!("{n_heads} query heads cannot share {n_kv_heads} kv heads")));
                }
                if qkv != Shape::tokens((n_heads + 2 * n_kv_heads) * head_dim) {
                    return Err(err(format!(
                        "packed qkv {qkv} for {n_heads}+2×{n_kv_heads} heads of {head_dim}"
                    )));
                }
                Ok((DType::F32, qkv))
            }
            Op::Attention {
                n_heads,
                n_kv_heads,
                head_dim,
                ..
            } => {
                let (q, k, v) = (f32_act(0)?, f32_act(1)?, f32_act(2)?);
                if *n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
                    return Err(err(format!("{n_heads} query heads cannot share {n_kv_heads} kv heads")));
                }
                let want_q = Shape::tokens(n_heads * head_dim);
                let want_kv = Shape::tokens(n_kv_heads * head_dim);
                if q != want_q || k != want_kv || v != want_kv {
                    return Err(err(format!(
                        "q {q}, k {k}, v {v}; expected {want_q}, {want_kv}, {want_kv}"
                    )));
                }
                Ok((DType::F32, q))
            }
            Op::Gelu | Op::Scale(_) | Op::L2Norm | Op::Unary(_) | Op::Softmax => Ok((DType::F32, f32_act(0)?)),
            Op::LayerNorm { .. } | Op::AddBias => {
                let x = f32_act(0)?;
                for i in 1..inputs.len() {
                    let v = f32_act(i)?;
                    if v != Shape::fixed(1, x.cols) {
                        return Err(err(format!(
                            "x {x} needs a [1, {}] vector as input {i}, got {v}",
                            x.cols
                        )));
                    }
                }
                Ok((DType::F32, x))
            }
            Op::ConcatCols => {
                let (a, b) = (f32_act(0)?, f32_act(1)?);
                if a.rows != b.rows {
                    return Err(err(format!("rows differ: {a} and {b}")));
                }
                Ok((
                    DType::F32,
                    Shape {
                        rows: a.rows,
                        cols: a.cols + b.cols,
                    },
                ))
            }
            Op::Add | Op::Mul => {
                let (a, b) = (f32_act(0)?, f32_act(1)?);
                if a != b {
                    return Err(err(format!("shapes differ: {a} and {b}")));
                }
                Ok((DType::F32, a))
            }
            Op::Pool(_) => {
                let x = f32_act(0)?;
                if x.rows != Rows::Tokens {
                    return Err(err(format!("pools per-token rows, got {x}")));
                }
                Ok((DType::F32, Shape::seqs(x.cols)))
            }
            Op::SliceCols { start, len } => {
                let x = f32_act(0)?;
                if *len == 0 || start + len > x.cols {
                    return Err(err(format!("columns {start}..{} of {x}", start + len)));
                }
                Ok((
                    DType::F32,
                    Shape {
                        rows: x.rows,
                        cols: *len,
                    },
                ))
            }
            Op::RmsNormRope {
                eps,
                head_dim,
                base,
                cols,
            } => {
                let x = inputs[0];
                let mut part = x;
                if let Some((start, len)) = cols {
                    if start + len > x.1.cols {
                        return Err(err(format!("columns {start}..{} of {}", start + len, x.1)));
                    }
                    part.1.cols = *len;
                }
                let norm = Op::RmsNorm {
                    eps: *eps,
                    group: *head_dim,
                }
                .infer(&[part, inputs[1]])?;
                Op::Rope {
                    base: *base,
                    head_dim: *head_dim,
                }
                .infer(&[norm, inputs[2]])?;
                Ok((DType::F32, x.1))
            }
            Op::AddRmsNorm { eps } | Op::ResidualNorm { eps } => {
                let (x, a) = (f32_act(0)?, f32_act(1)?);
                let c = a.cols;
                if x.rows != a.rows || (x.cols != c && x.cols != 2 * c) {
                    return Err(err(format!("x {x} must be [R, C] or [R, 2C] for a {a}")));
                }
                let a_typed = (DType::F32, a);
                Op::RmsNorm { eps: *eps, group: c }.infer(&[a_typed, inputs[2]])?;
                if let Op::ResidualNorm { .. } = self {
                    Op::RmsNorm { eps: *eps, group: c }.infer(&[a_typed, inputs[3]])?;
                    return Ok((
                        DType::F32,
                        Shape {
                            rows: a.rows,
                            cols: 2 * c,
                        },
                    ));
                }
                Ok((DType::F32, a))
            }
            Op::MatMul(MatMulSpec {
                norm_eps,
                geglu,
                in_cols,
            }) => {
                let mut x = inputs[0];
                if let Some((start, k)) = in_cols {
                    if norm_eps.is_some() || *k == 0 || start + k > x.1.cols {
                        return Err(err(format!(
                            "columns {start}..{} of {} (with a norm: {})",
                            start + k,
                            x.1,
                            norm_eps.is_some()
                        )));
                    }
                    x.1.cols = *k;
                }
                if let Some(eps) = norm_eps {
                    x = Op::RmsNorm {
                        eps: *eps,
                        group: x.1.cols,
                    }
                    .infer(&inputs[..2])?;
                }
                let (d, s) = plain_matmul(x, inputs[inputs.len() - 1]).map_err(err)?;
                if *geglu {
                    if s.cols % 2 != 0 {
                        return Err(err(format!(
                            "GeGLU needs stacked gate and up rows, W has {} rows",
                            s.cols
                        )));
                    }
                    return Ok((
                        d,
                        Shape {
                            rows: s.rows,
                            cols: s.cols / 2,
                        },
                    ));
                }
                Ok((d, s))
            }
            Op::PoolHead { kind, n_dense, .. } => {
                let mut t = Op::Pool(*kind).infer(&inputs[..1])?;
                for w in &inputs[1..1 + n_dense] {
                    t = plain_matmul(t, *w).map_err(err)?;
                }
                Ok(t)
            }
        }
    }
}

/// `x (R, K) · W (N, K)ᵀ -> (R, N)`: f32 activations, a float or quantized weight with fixed rows.
fn plain_matmul(x: Typed, w: Typed) -> Result<Typed, String> {
    let ((xd, xs), (wd, ws)) = (x, w);
    if xd != DType::F32 {
        return Err(format!("activations must be f32, are {xd}"));
    }
    if !wd.is_weight_type() {
        return Err(format!("the weight must be a float or quantized matrix, is {wd}"));
    }
    let Rows::Fixed(n) = ws.rows else {
        return Err(format!("weight must have fixed rows, has {ws}"));
    };
    if ws.cols != xs.cols {
        return Err(format!("x {xs} · Wᵀ with W {ws}: inner sizes differ"));
    }
    Ok((DType::F32, Shape { rows: xs.rows, cols: n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference() {
        let x = (DType::F32, Shape::tokens(768));
        let w = (DType::Q8_0, Shape::fixed(256, 768));
        assert_eq!(Op::matmul().infer(&[x, w]).unwrap(), (DType::F32, Shape::tokens(256)));
        assert!(Op::matmul().infer(&[x, (DType::Q8_0, Shape::fixed(256, 512))]).is_err());
        let norm = Op::RmsNorm { eps: 1e-6, group: 256 };
        assert!(norm.infer(&[x, (DType::F32, Shape::fixed(1, 256))]).is_ok());
        assert!(norm.infer(&[x, (DType::F32, Shape::fixed(1, 768))]).is_err());
        assert_eq!(Op::Pool(PoolKind::Mean).infer(&[x]).unwrap().1, Shape::seqs(768));
        assert!(Op::Add.infer(&[x]).is_err());
    }
}
