//! The vocabulary kernels share: how work is split (`Par`), where sequences are (`SeqSpan`), a
//! matmul's activations, the kernels' function types, attention's arguments, and the vector
//! primitives attention is written against. Nothing here names a kernel; the tables that do
//! are `crate::table`.

use gg_ops::WeightView;

/// Where the sequences of a batch are: rows `start..start + len` of every per-token value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpan {
    pub start: usize,
    pub len: usize,
}

/// The vector primitives an algorithm shared between backends is written against. A value
/// of an implementing type is proof that the CPU can run its instructions (SIMD
/// implementations can only be made after the feature check), so the methods are safe.
pub trait VecOps: Copy + Send + Sync {
    /// `Σ a[i]·b[i]`, summed in the order of `scalar::matmul::dot` (8 lanes).
    fn dot(self, a: &[f32], b: &[f32]) -> f32;
    /// `acc += p · v`
    fn axpy(self, acc: &mut [f32], p: f32, v: &[f32]);
    /// `x[i] = exp(x[i] − m)` (0 where `x[i]` is −∞).
    fn exp_sub(self, x: &mut [f32], m: f32) {
        for v in x {
            *v = (*v - m).exp();
        }
    }
    /// `exp_sub`, returning `Σ x[i]` of the results (in order, from 0).
    fn exp_sub_sum(self, x: &mut [f32], m: f32) -> f32 {
        self.exp_sub(x, m);
        x.iter().sum()
    }
    /// The largest value of `x` (−∞ when empty); NaN-ignoring like `f32::max`.
    fn max(self, x: &[f32]) -> f32 {
        x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }
    /// `x[i] *= c`
    fn scale(self, x: &mut [f32], c: f32) {
        for v in x {
            *v *= c;
        }
    }
    /// Four dot products against one shared vector `b`.
    fn dot4(self, a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
        a.map(|x| self.dot(x, b))
    }
    /// Attention scores of a key block: `out[qi][j] = (q[qi] · k[j]) · scale`.
    fn scores(self, q: &[&[f32]], k: &[&[f32]], scale: f32, out: &mut [[f32; KEY_BLOCK]]) {
        plain_scores(self, q, k, scale, out)
    }
    /// `acc[qi] += Σ_j p[qi][j] · v[j]` over rows of `acc` of `hd` values (zero weights
    /// skipped).
    fn pv(self, acc: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
        plain_pv(self, acc, hd, p, v)
    }
}

/// [`VecOps::scores`] from `dot4`/`dot` (the specification's order).
pub fn plain_scores<V: VecOps>(ops: V, q: &[&[f32]], k: &[&[f32]], scale: f32, out: &mut [[f32; KEY_BLOCK]]) {
    for (j, kj) in k.iter().enumerate() {
        let mut qi = 0;
        while qi + 4 <= q.len() {
            let dots = ops.dot4([q[qi], q[qi + 1], q[qi + 2], q[qi + 3]], kj);
            for (u, dot) in dots.into_iter().enumerate() {
                out[qi + u][j] = dot * scale;
            }
            qi += 4;
        }
        for (qi, row) in out.iter_mut().enumerate().take(q.len()).skip(qi) {
            row[j] = ops.dot(q[qi], kj) * scale;
        }
    }
}

/// [`VecOps::pv`] from `axpy` (the specification's order).
pub fn plain_pv<V: VecOps>(ops: V, acc: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
    for (qi, a) in acc.chunks_exact_mut(hd).take(p.len()).enumerate() {
        for (j, vj) in v.iter().enumerate() {
            let w = p[qi][j];
            if w != 0.0 {
                ops.axpy(a, w, vj);
            }
        }
    }
}

/// The scores a tier's register tiles left: rows `q_tiled..` against every key, and rows
/// below `q_tiled` against keys `k_tiled..`, one dot at a time.
pub fn score_edges<V: VecOps>(
    ops: V,
    q: &[&[f32]],
    k: &[&[f32]],
    scale: f32,
    out: &mut [[f32; KEY_BLOCK]],
    (q_tiled, k_tiled): (usize, usize),
) {
    for (qi, row) in out.iter_mut().enumerate().take(q.len()) {
        let from = if qi < q_tiled { k_tiled } else { 0 };
        for (j, s) in row.iter_mut().enumerate().take(k.len()).skip(from) {
            *s = ops.dot(q[qi], k[j]) * scale;
        }
    }
}

/// `acc`'s query rows in groups of up to `group`: `f(rows, p, n)` with the group's `n` rows of
/// `hd` and their weights (a tier's `p · V` tile keeps one group in registers).
pub fn for_row_groups(
    acc: &mut [f32],
    hd: usize,
    p: &[[f32; KEY_BLOCK]],
    group: usize,
    mut f: impl FnMut(&mut [f32], &[[f32; KEY_BLOCK]], usize),
) {
    for (q0, ps) in (0..p.len()).step_by(group).zip(p.chunks(group)) {
        let n = ps.len();
        f(&mut acc[q0 * hd..(q0 + n) * hd], ps, n);
    }
}

/// Keys scored at a time by attention.
pub const KEY_BLOCK: usize = 64;

/// Threads a kernel may split its work for: the [`crate::Team`] the caller installed (without
/// one, `team::parallel_for` runs the same chunks in order on the calling thread).
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

/// Elements `k0..k0 + out.len()` of row `j` of a weight, as f32 (exactly the type's
/// dequantization; `k0` and the length are whole blocks).
pub type RowFn = fn(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]);

/// In place NEOX rotation of `x (T, cols)`; `cos`/`sin` are `(positions, head_dim / 2)`.
pub type RopeFn = fn(x: &mut [f32], cols: usize, pos: &[i32], head_dim: usize, cos: &[f32], sin: &[f32]);

/// In place on `x (T, cols)`: per-head RMSNorm (weight `w`, heads of `head_dim`), then NEOX
/// RoPE, on columns `start..start + len` of each row (`window`); see `rows::rms_norm_rope`.
pub type RmsNormRopeFn = fn(
    x: &mut [f32],
    cols: usize,
    window: (usize, usize),
    w: &[f32],
    head_dim: usize,
    eps: f32,
    pos: &[i32],
    cos: &[f32],
    sin: &[f32],
    par: Par,
);

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

/// The first `n` elements of stack scratch `room`, zeroed, as floats: scratch sized for the
/// largest case is initialized only as far as a call uses it (zeroing a whole 16–64 KiB array
/// for every row or attention block showed up at 1 % of a long text).
///
/// # Panics
/// When `n` exceeds the room.
pub(crate) fn zeroed_prefix(room: &mut [std::mem::MaybeUninit<f32>], n: usize) -> &mut [f32] {
    assert!(n <= room.len(), "{n} values in scratch of {}", room.len());
    // SAFETY: the first n elements are inside `room` (asserted) and are written (all-zero bytes
    // are 0.0f32) before the slice over them is made; the slice borrows `room` mutably.
    unsafe {
        std::ptr::write_bytes(room.as_mut_ptr(), 0, n);
        std::slice::from_raw_parts_mut(room.as_mut_ptr().cast::<f32>(), n)
    }
}
