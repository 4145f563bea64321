//! Scalar row-wise and element-wise kernels: RMSNorm, RoPE, GELU, add, mul, scale, L2 norm,
//! embedding gather and pooling.

use gg_ops::{PoolKind, WeightView};

use crate::kernels::{Par, RowFn, SeqSpan};
use crate::split::OutPtr;
use crate::team::parallel_for;

/// `1 / sqrt(mean(x²) + eps)`, summing squares in the reference order (8 lanes).
#[inline]
pub fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let mut acc = [0f32; 8];
    let (c, t) = x.split_at(x.len() / 8 * 8);
    for ch in c.chunks_exact(8) {
        for l in 0..8 {
            acc[l] += ch[l] * ch[l];
        }
    }
    let tail: f32 = t.iter().map(|v| v * v).sum();
    let ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
    1.0 / (ss / x.len() as f32 + eps).sqrt()
}

/// `x += rmsnorm(a) ⊙ w`, per row, in place.
pub fn add_rms_norm(x: &mut [f32], a: &[f32], w: &[f32], eps: f32, _par: Par) {
    let cols = w.len();
    for (xr, ar) in x.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
        let r = rms_scale(ar, eps);
        for ((xv, &av), &wv) in xr.iter_mut().zip(ar).zip(w) {
            *xv += av * r * wv;
        }
    }
}

/// Rows of `2C`, in place: `s = x[..C] + rmsnorm(a) ⊙ w1`, then `x = [s | rmsnorm(s) ⊙ w2]`.
pub fn residual_norm(x: &mut [f32], a: &[f32], w1: &[f32], w2: &[f32], eps: f32, _par: Par) {
    let c = w1.len();
    for (xr, ar) in x.chunks_exact_mut(2 * c).zip(a.chunks_exact(c)) {
        let (s, h) = xr.split_at_mut(c);
        let r = rms_scale(ar, eps);
        for ((sv, &av), &wv) in s.iter_mut().zip(ar).zip(w1) {
            *sv += av * r * wv;
        }
        let r2 = rms_scale(s, eps);
        for ((hv, &sv), &wv) in h.iter_mut().zip(s.iter()).zip(w2) {
            *hv = sv * r2 * wv;
        }
    }
}

/// `x = x / sqrt(mean(x²) + eps) ⊙ w` over every `group` columns, in place.
pub fn rms_norm(x: &mut [f32], w: &[f32], group: usize, eps: f32, par: Par) {
    let norm = |g: &mut [f32]| {
        let r = rms_scale(g, eps);
        for (v, &s) in g.iter_mut().zip(w) {
            *v = *v * r * s;
        }
    };
    // Parallel only when there is enough work to pay for the fork.
    if par.is_serial() || x.len() < 1 << 16 {
        x.chunks_exact_mut(group).for_each(norm);
    } else {
        // 64 groups a unit; units write disjoint rows of `x`.
        let rows = x.len() / group;
        let out = OutPtr::new(x);
        parallel_for(rows.div_ceil(64), |u| {
            let (r0, r1) = (u * 64, (u * 64 + 64).min(rows));
            // SAFETY: unit u alone touches groups r0..r1, inside `x`.
            let mine = unsafe { std::slice::from_raw_parts_mut(out.get().add(r0 * group), (r1 - r0) * group) };
            mine.chunks_exact_mut(group).for_each(norm);
        });
    }
}

/// NEOX rotary embedding in place: in each head, element `i` rotates with `i + hd/2`.
pub fn rope(x: &mut [f32], cols: usize, pos: &[i32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for (row, &p) in x.chunks_exact_mut(cols).zip(pos) {
        let c = &cos[p as usize * half..][..half];
        let s = &sin[p as usize * half..][..half];
        for head in row.chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x0, x1) = (a[i], b[i]);
                a[i] = x0 * c[i] - x1 * s[i];
                b[i] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

/// GELU, tanh approximation (`gelu_pytorch_tanh`).
#[inline]
pub fn gelu_one(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

pub fn gelu(x: &mut [f32]) {
    for v in x {
        *v = gelu_one(*v);
    }
}

pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

pub fn mul(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a *= b;
    }
}

pub fn scale(x: &mut [f32], factor: f32) {
    for a in x {
        *a *= factor;
    }
}

/// Each row divided by max(‖row‖₂, 1e-12) (torch's `F.normalize`).
pub fn l2_norm(x: &mut [f32], cols: usize) {
    for row in x.chunks_exact_mut(cols) {
        let ss: f32 = row.iter().map(|v| v * v).sum();
        let inv = 1.0 / ss.sqrt().max(1e-12);
        for v in row {
            *v *= inv;
        }
    }
}

/// `out[t] = table[ids[t]] · scale`, rows decoded by `decode`.
pub fn embed(ids: &[i32], table: WeightView<'_>, decode: RowFn, scale: f32, out: &mut [f32]) {
    let cols = table.cols();
    for (&id, row) in ids.iter().zip(out.chunks_exact_mut(cols)) {
        decode(table, id as usize, 0, row);
        for v in row {
            *v *= scale;
        }
    }
}

/// For each row: `width` values from column `x_start` of `x (R, x_cols)` into the first
/// `width` columns of `out (R, out_cols)`, `R = out.len() / out_cols`.
pub fn copy_cols(x: &[f32], x_cols: usize, x_start: usize, out: &mut [f32], out_cols: usize, width: usize) {
    if x_start == 0 && x_cols == out_cols && width == out_cols {
        out.copy_from_slice(&x[..out.len()]);
        return;
    }
    for (o, r) in out.chunks_exact_mut(out_cols).zip(x.chunks_exact(x_cols)) {
        o[..width].copy_from_slice(&r[x_start..x_start + width]);
    }
}

/// One row per sequence.
pub fn pool(x: &[f32], cols: usize, seqs: &[SeqSpan], kind: PoolKind, out: &mut [f32]) {
    for (s, o) in seqs.iter().zip(out.chunks_exact_mut(cols)) {
        let rows = &x[s.start * cols..(s.start + s.len) * cols];
        match kind {
            PoolKind::Mean => {
                o.fill(0.0);
                for r in rows.chunks_exact(cols) {
                    for (a, b) in o.iter_mut().zip(r) {
                        *a += b;
                    }
                }
                let inv = 1.0 / s.len as f32;
                for a in o.iter_mut() {
                    *a *= inv;
                }
            }
            PoolKind::First => o.copy_from_slice(&rows[..cols]),
            PoolKind::Last => o.copy_from_slice(&rows[rows.len() - cols..]),
            PoolKind::Max => {
                o.fill(f32::NEG_INFINITY);
                for r in rows.chunks_exact(cols) {
                    for (a, &b) in o.iter_mut().zip(r) {
                        *a = a.max(b);
                    }
                }
            }
        }
    }
}
