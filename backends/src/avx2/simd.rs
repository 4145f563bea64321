//! AVX2/FMA primitives. Every function here is `#[target_feature]`-gated and `unsafe`; the
//! safe entry points of the AVX2 table reach them only after `is_available()` (runtime
//! detection) has said the CPU has AVX2, FMA and F16C.

use std::arch::x86_64::*;

use gg_ops::{BlockQ8_0, QK8_0};
use half::f16;

use crate::kernels::VecOps;

/// The scalar reduction order: lanes (l0+l4, l1+l5, l2+l6, l3+l7), then
/// ((s0+s1) + (s2+s3)).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let h = _mm_hadd_ps(s, s);
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
}

/// `Σ a[i]·b[i]`, 8 lanes, FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() == b.len()`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths.
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), acc);
        i += 8;
    }
    let mut tail = 0f32;
    for j in n8..n {
        tail += a[j] * b[j];
    }
    hsum(acc) + tail
}

/// `acc += p · v`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    let n = acc.len().min(v.len());
    let n8 = n / 8 * 8;
    let pv = _mm256_set1_ps(p);
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths.
        let a = acc.as_mut_ptr().add(i);
        _mm256_storeu_ps(a, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v.as_ptr().add(i)), _mm256_loadu_ps(a)));
        i += 8;
    }
    for j in n8..n {
        acc[j] += p * v[j];
    }
}

/// Q8_0 blocks to f32: `d · q`, exactly as the scalar dequantizer computes it.
///
/// # Safety
/// The CPU must support AVX2; `out.len() == blocks.len() * 32`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dequant_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    debug_assert_eq!(out.len(), blocks.len() * QK8_0);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = _mm256_set1_ps(b.d.to_f32());
        // SAFETY: a block holds 32 quants; each load reads 8 of them.
        let q = b.qs.as_ptr() as *const __m128i;
        let lo = _mm_loadu_si128(q);
        let hi = _mm_loadu_si128(q.add(1));
        let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
        for (k, part) in parts.into_iter().enumerate() {
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
            _mm256_storeu_ps(o.as_mut_ptr().add(8 * k), _mm256_mul_ps(d, v));
        }
    }
}

/// f16 to f32 (exact).
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f16_to_f32(src: &[f16], out: &mut [f32]) {
    let n = src.len().min(out.len());
    let n8 = n / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths; f16 is 2 bytes.
        let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
        _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    for j in n8..n {
        out[j] = src[j].to_f32();
    }
}

/// The AVX2 vector primitives for shared algorithms (attention).
pub struct Avx2Ops;

impl VecOps for Avx2Ops {
    #[inline]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `Avx2Ops` is only used by the AVX2 kernel table, which is only handed out
        // when the CPU supports AVX2 and FMA (`Backend::kernels`).
        unsafe { dot(a, b) }
    }

    #[inline]
    fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
        // SAFETY: as for `dot`.
        unsafe { axpy(acc, p, v) }
    }
}
