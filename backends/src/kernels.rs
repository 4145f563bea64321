//! The kernel table: one function per op, one table per backend. The scalar table is the
//! specification every SIMD table is tested against.

use gg_ops::PoolKind;

use crate::weights::WeightView;
use crate::Backend;

/// Where the sequences of a batch are: rows `start..start + len` of every per-token value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpan {
    pub start: usize,
    pub len: usize,
}

/// The vector primitives an algorithm shared between backends is written against.
pub trait VecOps: Sync {
    /// `Σ a[i]·b[i]`, summed in the order of `scalar::matmul::dot` (8 lanes).
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `acc += p · v`
    fn axpy(acc: &mut [f32], p: f32, v: &[f32]);
    /// `x[i] = exp(x[i] − m)` (0 where `x[i]` is −∞).
    fn exp_sub(x: &mut [f32], m: f32) {
        for v in x {
            *v = (*v - m).exp();
        }
    }
    /// Four dot products against one shared vector `b`.
    fn dot4(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
        a.map(|x| Self::dot(x, b))
    }
}

/// Threads a kernel may use (rayon, inside the caller's pool).
#[derive(Clone, Copy, Debug)]
pub struct Par {
    pub threads: usize,
}

impl Par {
    pub const SERIAL: Par = Par { threads: 1 };

    pub fn is_serial(&self) -> bool {
        self.threads <= 1
    }
}

/// A matmul's activations: `rows` rows of `k` values, row `r` at `data[r * stride..]`
/// (`stride > k` when they are columns of a wider value).
#[derive(Clone, Copy, Debug)]
pub struct Activations<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub k: usize,
    pub stride: usize,
}

impl<'a> Activations<'a> {
    pub fn dense(data: &'a [f32], rows: usize, k: usize) -> Activations<'a> {
        Activations {
            data,
            rows,
            k,
            stride: k,
        }
    }

    /// Row `r`'s `k` values.
    #[inline]
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.stride..r * self.stride + self.k]
    }
}

/// `out (rows, n) = x (rows, k) · W (n, k)ᵀ`
pub type MatMulFn = fn(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par);

/// In place NEOX rotation of `x (T, cols)`; `cos`/`sin` are `(positions, head_dim / 2)`.
pub type RopeFn = fn(x: &mut [f32], cols: usize, pos: &[i32], head_dim: usize, cos: &[f32], sin: &[f32]);

/// In place on rows of `2C`: `s = x[..C] + rmsnorm(a) ⊙ w1`, then `x = [s | rmsnorm(s) ⊙ w2]`.
pub type ResidualNormFn = fn(x: &mut [f32], a: &[f32], w1: &[f32], w2: &[f32], eps: f32, par: Par);

/// Where attention reads q, k, v and writes its output.
pub enum AttentionIo<'a> {
    /// `q (T, H·hd)`, `k`, `v (T, KV·hd)` in their own buffers; `out (T, H·hd)`.
    Separate {
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        out: &'a mut [f32],
    },
    /// Rows `[q | k | v]` of `(H + 2·KV)·hd`; the output replaces each row's q columns.
    Packed { qkv: &'a mut [f32] },
}

/// Attention over a batch of packed sequences; see `gg_ops::Op::Attention`.
pub struct AttentionArgs<'a> {
    pub io: AttentionIo<'a>,
    pub seqs: &'a [SeqSpan],
    /// For every token row, the index of its sequence in `seqs`.
    pub row_seq: &'a [u32],
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub window: Option<usize>,
}

pub struct KernelTable {
    pub backend: Backend,
    pub matmul: MatMulFn,
    /// `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)` where `W (2f, k)` stacks Wg over Wu.
    pub matmul_geglu: MatMulFn,
    /// In place: `x += rmsnorm(a) ⊙ w` per row of `w.len()` columns.
    pub add_rms_norm: fn(x: &mut [f32], a: &[f32], w: &[f32], eps: f32, par: Par),
    /// In place on rows of `2C`: `s = x[..C] + rmsnorm(a) ⊙ w1`, then `x = [s | rmsnorm(s) ⊙ w2]`.
    pub residual_norm: ResidualNormFn,
    /// In place: every `group` columns of each row normalized, times `w`.
    pub rms_norm: fn(x: &mut [f32], w: &[f32], group: usize, eps: f32, par: Par),
    pub rope: RopeFn,
    pub attention: fn(args: AttentionArgs<'_>, par: Par),
    pub gelu: fn(x: &mut [f32]),
    pub add: fn(x: &mut [f32], y: &[f32]),
    pub mul: fn(x: &mut [f32], y: &[f32]),
    pub scale: fn(x: &mut [f32], factor: f32),
    /// In place, per row of `cols`.
    pub l2_norm: fn(x: &mut [f32], cols: usize),
    /// `out (T, cols) = table[ids] · scale` (ids are checked by the executor).
    pub embed: fn(ids: &[i32], table: WeightView<'_>, cols: usize, scale: f32, out: &mut [f32]),
    /// `out (S, cols)` from `x (T, cols)`.
    pub pool: fn(x: &[f32], cols: usize, seqs: &[SeqSpan], kind: PoolKind, out: &mut [f32]),
}
