//! The row-wise ops — RMSNorm (alone, added to a residual, the residual + norm pair) and NEOX
//! RoPE — written once over a tier's row primitives ([`RowOps`]). The scalar tier instantiates
//! them with [`ScalarRows`], the specification; a SIMD tier's primitives compute the same
//! operations in the same order (squares summed in 8 interleaved lanes, products rounded one
//! at a time, no fused multiply-add), so every tier agrees with it bit for bit.
//!
//! Rows are independent, so the drivers split batches of many rows over the team's threads
//! (a row's result never depends on which thread ran it).

use crate::kernels::Par;
use crate::team::parallel_for;

/// Rows per parallel unit; batches of at most this many rows run on the calling thread (a
/// short query's norms cost less than a step's dispatch).
const ROWS_PER_UNIT: usize = 32;

/// The vector primitives of the row-wise ops. A value of an implementing type is proof that
/// the CPU can run its instructions, so the methods are safe.
pub trait RowOps: Copy + Send + Sync + 'static {
    /// The primitives (the proof); only called from kernel tables handed out after detection.
    fn get() -> Self;
    /// `Σ x[i]²`: eight interleaved partial sums (lane `i % 8`), combined as
    /// `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`, then the tail past the last whole
    /// eight, summed in order, added.
    fn sum_squares(self, x: &[f32]) -> f32;
    /// `x[i] = (x[i] · r) · w[i]`
    fn scale_by(self, x: &mut [f32], r: f32, w: &[f32]);
    /// `x[i] += (a[i] · r) · w[i]`
    fn add_scaled(self, x: &mut [f32], a: &[f32], r: f32, w: &[f32]);
    /// `out[i] = (a[i] · r) · w[i]`
    fn scaled(self, out: &mut [f32], a: &[f32], r: f32, w: &[f32]);
    /// `(a[i], b[i]) = (a·c − b·s, a·s + b·c)` with the old `a[i]`, `b[i]` (each product
    /// rounded, then the sum).
    fn rotate(self, a: &mut [f32], b: &mut [f32], c: &[f32], s: &[f32]);
}

/// The reference primitives.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScalarRows;

impl RowOps for ScalarRows {
    fn get() -> ScalarRows {
        ScalarRows
    }

    fn sum_squares(self, x: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (c, t) = x.split_at(x.len() / 8 * 8);
        for ch in c.chunks_exact(8) {
            for l in 0..8 {
                acc[l] += ch[l] * ch[l];
            }
        }
        combine_lanes(acc, t)
    }

    fn scale_by(self, x: &mut [f32], r: f32, w: &[f32]) {
        for (v, &s) in x.iter_mut().zip(w) {
            *v = *v * r * s;
        }
    }

    fn add_scaled(self, x: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        for ((xv, &av), &wv) in x.iter_mut().zip(a).zip(w) {
            *xv += av * r * wv;
        }
    }

    fn scaled(self, out: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        for ((o, &av), &wv) in out.iter_mut().zip(a).zip(w) {
            *o = av * r * wv;
        }
    }

    fn rotate(self, a: &mut [f32], b: &mut [f32], c: &[f32], s: &[f32]) {
        for i in 0..a.len() {
            let (x0, x1) = (a[i], b[i]);
            a[i] = x0 * c[i] - x1 * s[i];
            b[i] = x0 * s[i] + x1 * c[i];
        }
    }
}

/// The end of [`RowOps::sum_squares`]: eight lane sums combined pairwise, plus the squares of
/// the tail summed in order.
#[inline]
pub fn combine_lanes(acc: [f32; 8], tail: &[f32]) -> f32 {
    let mut t = 0f32;
    for v in tail {
        t += v * v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t
}

/// `1 / sqrt(mean(x²) + eps)`.
#[inline]
pub fn rms_scale<R: RowOps>(ops: R, x: &[f32], eps: f32) -> f32 {
    1.0 / (ops.sum_squares(x) / x.len() as f32 + eps).sqrt()
}

/// `f(rows r0.., r0)` over the `width`-wide rows of `x`, in parallel units of
/// [`ROWS_PER_UNIT`] rows when there are more than that and a team to share them.
pub(crate) fn for_row_units<T: Send>(x: &mut [T], width: usize, par: Par, f: impl Fn(&mut [T], usize) + Sync) {
    let rows = x.len() / width.max(1);
    if par.is_serial() || rows <= ROWS_PER_UNIT {
        return f(x, 0);
    }
    let ptr = SendPtr(x.as_mut_ptr());
    parallel_for(rows.div_ceil(ROWS_PER_UNIT), |u| {
        let (r0, r1) = (u * ROWS_PER_UNIT, ((u + 1) * ROWS_PER_UNIT).min(rows));
        // SAFETY: unit u alone touches rows r0..r1, inside `x`.
        let mine = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(r0 * width), (r1 - r0) * width) };
        f(mine, r0)
    });
}

/// A pointer to rows that parallel units write disjointly.
struct SendPtr<T>(*mut T);
// SAFETY: each unit dereferences only its own rows (see `for_row_units`).
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method, so closures capture the whole (Sync) wrapper, not the raw field.
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `x += rmsnorm(a) ⊙ w`, per row of `w.len()` columns, in place.
pub fn add_rms_norm<R: RowOps>(x: &mut [f32], a: &[f32], w: &[f32], eps: f32, par: Par) {
    let (ops, cols) = (R::get(), w.len());
    for_row_units(x, cols, par, |xs, r0| {
        let a = &a[r0 * cols..];
        for (xr, ar) in xs.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
            ops.add_scaled(xr, ar, rms_scale(ops, ar, eps), w);
        }
    });
}

/// Rows of `2C`, in place: `s = x[..C] + rmsnorm(a) ⊙ w1`, then `x = [s | rmsnorm(s) ⊙ w2]`.
pub fn residual_norm<R: RowOps>(x: &mut [f32], a: &[f32], w1: &[f32], w2: &[f32], eps: f32, par: Par) {
    let (ops, c) = (R::get(), w1.len());
    for_row_units(x, 2 * c, par, |xs, r0| {
        let a = &a[r0 * c..];
        for (xr, ar) in xs.chunks_exact_mut(2 * c).zip(a.chunks_exact(c)) {
            let (s, h) = xr.split_at_mut(c);
            ops.add_scaled(s, ar, rms_scale(ops, ar, eps), w1);
            ops.scaled(h, s, rms_scale(ops, s, eps), w2);
        }
    });
}

/// `x = x / sqrt(mean(x²) + eps) ⊙ w` over every `group` columns, in place.
pub fn rms_norm<R: RowOps>(x: &mut [f32], w: &[f32], group: usize, eps: f32, par: Par) {
    let ops = R::get();
    for_row_units(x, group, par, |xs, _| {
        for g in xs.chunks_exact_mut(group) {
            ops.scale_by(g, rms_scale(ops, g, eps), w);
        }
    });
}

/// NEOX rotary embedding in place on rows of `cols`: in each head, element `i` rotates with
/// `i + hd/2` by the angle of the row's position.
pub fn rope<R: RowOps>(x: &mut [f32], cols: usize, pos: &[i32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    rope_rows(R::get(), x, cols, pos, head_dim, cos, sin)
}

fn rope_rows<R: RowOps>(ops: R, x: &mut [f32], cols: usize, pos: &[i32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for (row, &p) in x.chunks_exact_mut(cols).zip(pos) {
        let c = &cos[p as usize * half..][..half];
        let s = &sin[p as usize * half..][..half];
        for head in row.chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            ops.rotate(a, b, c, s);
        }
    }
}

/// Per-head RMSNorm then RoPE on columns `start..start + len` of every row of `x (T, cols)`
/// (q or k inside packed q|k|v rows, or the whole row), rows split over the team.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_rope<R: RowOps>(
    x: &mut [f32],
    cols: usize,
    (start, len): (usize, usize),
    w: &[f32],
    head_dim: usize,
    eps: f32,
    pos: &[i32],
    cos: &[f32],
    sin: &[f32],
    par: Par,
) {
    let ops = R::get();
    for_row_units(x, cols, par, |xs, r0| {
        for (r, row) in xs.chunks_exact_mut(cols).enumerate() {
            let part = &mut row[start..start + len];
            for g in part.chunks_exact_mut(head_dim) {
                ops.scale_by(g, rms_scale(ops, g, eps), w);
            }
            rope_rows(ops, part, len, &pos[r0 + r..r0 + r + 1], head_dim, cos, sin);
        }
    });
}
