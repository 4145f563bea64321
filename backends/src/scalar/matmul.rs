//! Scalar matmul against any weight type: each weight row is converted to f32 by the type's
//! specification once per tile of tokens, then dotted with every token of the tile. Threads
//! split the weight rows.

use gg_ops::WeightView;

use crate::kernels::{Activations, Par};
use crate::split::{for_row_chunks, OutPtr};
use crate::table::ExactKernels;
use crate::wtypes::{dequantize_row, WeightType};

/// Tokens whose activations stay in cache while the weight rows stream past.
pub(crate) const TOKEN_TILE: usize = 64;
/// Longest stretch of a weight row converted at once (a multiple of every block length).
pub(crate) const K_SEGMENT: usize = 4096;
/// Longest row the matmul kernels take (the GeGLU kernel holds two whole rows on the stack).
pub const MAX_K: usize = K_SEGMENT;

/// The reference dot product: eight interleaved partial sums, combined pairwise. Every
/// SIMD kernel sums in this order (8 lanes), so results agree to rounding.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (ac, at) = a.split_at(a.len() / 8 * 8);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in at.iter().zip(bt) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)`, `W (2f, k)` = Wg stacked over Wu.
pub fn matmul_geglu<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], f: usize, par: Par) {
    let (rows, k) = (x.rows, x.k);
    assert!(out.len() >= rows * f, "matmul_geglu output too short");
    assert!(k <= K_SEGMENT, "matmul_geglu supports k up to {K_SEGMENT}");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut gate = [0f32; K_SEGMENT];
        let mut up = [0f32; K_SEGMENT];
        for t0 in (0..rows).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(rows);
            for j in j0..j1 {
                dequantize_row::<W>(w, j, 0, &mut gate[..k]);
                dequantize_row::<W>(w, f + j, 0, &mut up[..k]);
                for t in t0..t1 {
                    let xt = x.row(t);
                    let v = crate::math::gelu_one(dot(xt, &gate[..k])) * dot(xt, &up[..k]);
                    // SAFETY: t < rows, j < f: inside `out`; column j belongs to this thread.
                    unsafe { *ptr.get().add(t * f + j) = v };
                }
            }
        }
    };
    for_row_chunks(f, par, work);
}

/// `out (rows, n) = x (rows, k) · W (n, k)ᵀ`
pub fn matmul<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par) {
    let (rows, k) = (x.rows, x.k);
    assert!(out.len() >= rows * n, "matmul output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut wrow = [0f32; K_SEGMENT];
        for t0 in (0..rows).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(rows);
            for j in j0..j1 {
                for k0 in (0..k).step_by(K_SEGMENT) {
                    let len = (k - k0).min(K_SEGMENT);
                    let seg = &mut wrow[..len];
                    dequantize_row::<W>(w, j, k0, seg);
                    for t in t0..t1 {
                        let d = dot(&x.row(t)[k0..k0 + len], seg);
                        // SAFETY: t < rows and j < n, so t * n + j is inside `out`; only the
                        // thread that owns row j writes column j.
                        unsafe {
                            let o = ptr.get().add(t * n + j);
                            *o = if k0 == 0 { d } else { *o + d };
                        }
                    }
                }
            }
        }
    };
    for_row_chunks(n, par, work);
}

/// The scalar tier's exact kernels: the ones above, for every weight type.
pub struct ScalarExact;

impl ExactKernels for ScalarExact {
    const MAX_K: usize = MAX_K;

    fn matmul<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par) {
        matmul::<W>(x, w, out, n, par)
    }

    fn matmul_geglu<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], f: usize, par: Par) {
        matmul_geglu::<W>(x, w, out, f, par)
    }

    fn dequantize_row<W: WeightType>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        dequantize_row::<W>(w, j, k0, out)
    }
}
