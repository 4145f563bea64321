//! Scalar element-wise kernels: GELU, add, mul, scale, L2 norm, embedding gather and pooling
//! (RMSNorm and RoPE are `crate::rows`, over the scalar primitives).

use gg_ops::{PoolKind, WeightView};

use crate::kernels::{RowFn, SeqSpan};
use crate::math::gelu_one;

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
