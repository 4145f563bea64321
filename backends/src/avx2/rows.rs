//! The row-wise primitives ([`RowOps`]) on AVX2: eight lanes at a time, the scalar
//! specification's operations in its order (one rounding per product and per sum, no FMA), so
//! the norms and RoPE agree with it bit for bit. The AVX-512 tier runs them too: these ops
//! stream their rows once and wait on memory, not on the width of the vectors.

use std::arch::x86_64::*;

use super::token::Avx2;
use crate::cpu::CpuToken;
use crate::rows::{combine_lanes, RowOps};

/// The tier's primitives; a value exists only where an [`Avx2`] token does.
#[derive(Clone, Copy, Debug)]
pub struct Avx2RowOps {
    _cpu: Avx2,
}

impl RowOps for Avx2RowOps {
    fn get() -> Avx2RowOps {
        Avx2RowOps { _cpu: Avx2::get() }
    }

    fn sum_squares(self, x: &[f32]) -> f32 {
        // SAFETY: the token proves AVX2.
        unsafe { sum_squares(x) }
    }

    fn scale_by(self, x: &mut [f32], r: f32, w: &[f32]) {
        assert!(w.len() >= x.len());
        // SAFETY: the token proves AVX2; `w` covers `x`.
        unsafe { scale_by(x, r, w) }
    }

    fn add_scaled(self, x: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        assert!(a.len() >= x.len() && w.len() >= x.len());
        // SAFETY: the token proves AVX2; `a` and `w` cover `x`.
        unsafe { add_scaled(x, a, r, w) }
    }

    fn scaled(self, out: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
        assert!(a.len() >= out.len() && w.len() >= out.len());
        // SAFETY: the token proves AVX2; `a` and `w` cover `out`.
        unsafe { scaled(out, a, r, w) }
    }

    fn rotate(self, a: &mut [f32], b: &mut [f32], c: &[f32], s: &[f32]) {
        assert!(b.len() >= a.len() && c.len() >= a.len() && s.len() >= a.len());
        // SAFETY: the token proves AVX2; `b`, `c` and `s` cover `a`.
        unsafe { rotate(a, b, c, s) }
    }
}

/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
fn sum_squares(x: &[f32]) -> f32 {
    let n8 = x.len() / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= n8 <= x.len().
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        acc = _mm256_add_ps(acc, _mm256_mul_ps(v, v));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 8 floats into 8.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    combine_lanes(lanes, &x[n8..])
}

/// `out[i] = f(a[i], b[i])` eight lanes at a time, then `g` on the tail: the loop the
/// element-wise primitives share. `out` may be `a`.
///
/// # Safety
/// AVX2 must be available; `a` and `b` hold at least `len` values, `out` `len` values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn map2(
    out: *mut f32,
    a: *const f32,
    b: *const f32,
    len: usize,
    f: impl Fn(__m256, __m256) -> __m256,
    g: impl Fn(f32, f32) -> f32,
) {
    let n8 = len / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= len, inside all three (the caller's contract).
        unsafe { _mm256_storeu_ps(out.add(i), f(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)))) };
    }
    for i in n8..len {
        // SAFETY: i < len, as above.
        unsafe { *out.add(i) = g(*a.add(i), *b.add(i)) };
    }
}

/// # Safety
/// AVX2 must be available; `w.len() >= x.len()`.
#[target_feature(enable = "avx2")]
fn scale_by(x: &mut [f32], r: f32, w: &[f32]) {
    let rv = _mm256_set1_ps(r);
    let p = x.as_mut_ptr();
    // SAFETY: `x` and `w` hold x.len() values; out = a = x is read before it is written.
    unsafe {
        map2(
            p,
            p,
            w.as_ptr(),
            x.len(),
            |v, s| _mm256_mul_ps(_mm256_mul_ps(v, rv), s),
            |v, s| v * r * s,
        )
    }
}

/// # Safety
/// AVX2 must be available; `a` and `w` hold at least `x.len()` values.
#[target_feature(enable = "avx2")]
fn add_scaled(x: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
    let rv = _mm256_set1_ps(r);
    let n8 = x.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= x.len(), inside all three.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let t = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_loadu_ps(a.as_ptr().add(i)), rv),
                _mm256_loadu_ps(w.as_ptr().add(i)),
            );
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), t));
        }
    }
    for i in n8..x.len() {
        x[i] += a[i] * r * w[i];
    }
}

/// # Safety
/// AVX2 must be available; `a` and `w` hold at least `out.len()` values.
#[target_feature(enable = "avx2")]
fn scaled(out: &mut [f32], a: &[f32], r: f32, w: &[f32]) {
    let rv = _mm256_set1_ps(r);
    // SAFETY: `a` and `w` cover `out`, which is a distinct buffer.
    unsafe {
        map2(
            out.as_mut_ptr(),
            a.as_ptr(),
            w.as_ptr(),
            out.len(),
            |v, s| _mm256_mul_ps(_mm256_mul_ps(v, rv), s),
            |v, s| v * r * s,
        )
    }
}

/// # Safety
/// AVX2 must be available; `b`, `c` and `s` hold at least `a.len()` values.
#[target_feature(enable = "avx2")]
fn rotate(a: &mut [f32], b: &mut [f32], c: &[f32], s: &[f32]) {
    let n8 = a.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: i + 8 <= a.len(), inside all four.
        unsafe {
            let (pa, pb) = (a.as_mut_ptr().add(i), b.as_mut_ptr().add(i));
            let (x0, x1) = (_mm256_loadu_ps(pa), _mm256_loadu_ps(pb));
            let (cv, sv) = (_mm256_loadu_ps(c.as_ptr().add(i)), _mm256_loadu_ps(s.as_ptr().add(i)));
            _mm256_storeu_ps(pa, _mm256_sub_ps(_mm256_mul_ps(x0, cv), _mm256_mul_ps(x1, sv)));
            _mm256_storeu_ps(pb, _mm256_add_ps(_mm256_mul_ps(x0, sv), _mm256_mul_ps(x1, cv)));
        }
    }
    for i in n8..a.len() {
        let (x0, x1) = (a[i], b[i]);
        a[i] = x0 * c[i] - x1 * s[i];
        b[i] = x0 * s[i] + x1 * c[i];
    }
}
