//! Kernels made of a tier's slots: the fused ops whose parts the tiers already provide. Each
//! takes the tier's table, so a SIMD tier's norm, RoPE or matmul runs inside them.

use gg_ops::{PoolKind, WeightView};

use crate::kernels::{Activations, MatMulFn, Par, SeqSpan};
use crate::table::KernelTable;

/// `out (R, n) = (rmsnorm(x) ⊙ w) · Wᵀ` for `x (R, k)`; the normalized rows go to
/// `scratch (R, k)` first.
#[allow(clippy::too_many_arguments)]
pub fn norm_matmul(
    table: &KernelTable,
    matmul: MatMulFn,
    x: &[f32],
    k: usize,
    norm_w: &[f32],
    eps: f32,
    weight: WeightView<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
    par: Par,
) {
    let n = out.len() / (x.len() / k).max(1);
    matmul(rms_normed(table, x, k, norm_w, eps, scratch, par), weight, out, n, par);
}

/// `rmsnorm(x) ⊙ w` for `x (R, k)`, written to `scratch (R, k)`: the activations of a matmul
/// with a fused norm, whatever kernel then runs.
pub fn rms_normed<'a>(
    table: &KernelTable,
    x: &[f32],
    k: usize,
    norm_w: &[f32],
    eps: f32,
    scratch: &'a mut [f32],
    par: Par,
) -> Activations<'a> {
    let normed = &mut scratch[..x.len()];
    normed.copy_from_slice(x);
    (table.rms_norm)(normed, norm_w, k, eps, par);
    Activations::dense(normed, x.len() / k, k)
}

/// Pool `x (T, cols)` per sequence, then the dense layers `0..n_dense` (`width(d)` outputs
/// each; `dense(d, x, out)` runs layer `d` with the tier's kernel for its weight), then
/// L2-normalize if asked. `scratch` holds the pooled rows and every dense output but the
/// last; `out (S, last width)`.
#[allow(clippy::too_many_arguments)]
pub fn pool_head(
    table: &KernelTable,
    x: &[f32],
    cols: usize,
    seqs: &[SeqSpan],
    kind: PoolKind,
    n_dense: usize,
    width: impl Fn(usize) -> usize,
    mut dense: impl FnMut(usize, Activations<'_>, &mut [f32]),
    normalize: bool,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let s = seqs.len();
    if n_dense == 0 {
        (table.pool)(x, cols, seqs, kind, out);
    } else {
        let (mut k, mut cur) = (cols, 0);
        (table.pool)(x, cols, seqs, kind, &mut scratch[..s * cols]);
        for d in 0..n_dense {
            let n_out = width(d);
            if d + 1 == n_dense {
                let xs = &scratch[cur..cur + s * k];
                dense(d, Activations::dense(xs, s, k), out);
            } else {
                let (done, rest) = scratch.split_at_mut(cur + s * k);
                let xs = &done[cur..];
                dense(d, Activations::dense(xs, s, k), &mut rest[..s * n_out]);
                cur += s * k;
            }
            k = n_out;
        }
    }
    if normalize {
        let out_cols = out.len() / s.max(1);
        (table.l2_norm)(out, out_cols);
    }
}
