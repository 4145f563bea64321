//! AVX2/FMA primitives. Every function here is `#[target_feature]`-gated and `unsafe`; the
//! safe entry points of the AVX2 table reach them only after `is_available()` (runtime
//! detection) has said the CPU has AVX2, FMA and F16C.

use std::arch::x86_64::*;

use gg_ops::{BlockQ8_0, QK8_0};
use half::f16;

use super::token::Avx2;
use crate::kernels::{for_row_groups, plain_pv, plain_scores, score_edges, VecOps, KEY_BLOCK};

/// The scalar reduction order: lanes (l0+l4, l1+l5, l2+l6, l3+l7), then
/// ((s0+s1) + (s2+s3)).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn hsum(v: __m256) -> f32 {
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
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths.
        let (x, y) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i))) };
        acc = _mm256_fmadd_ps(x, y, acc);
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
pub fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    let n = acc.len().min(v.len());
    let n8 = n / 8 * 8;
    let pv = _mm256_set1_ps(p);
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths.
        unsafe {
            let a = acc.as_mut_ptr().add(i);
            _mm256_storeu_ps(
                a,
                _mm256_fmadd_ps(pv, _mm256_loadu_ps(v.as_ptr().add(i)), _mm256_loadu_ps(a)),
            );
        }
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
pub fn dequant_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    debug_assert_eq!(out.len(), blocks.len() * QK8_0);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = _mm256_set1_ps(b.d.to_f32());
        // SAFETY: a block holds 32 quants; the two loads read 16 each.
        let (lo, hi) = unsafe {
            let q = b.qs.as_ptr() as *const __m128i;
            (_mm_loadu_si128(q), _mm_loadu_si128(q.add(1)))
        };
        let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
        for (k, part) in parts.into_iter().enumerate() {
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
            // SAFETY: o is one 32-value chunk; lanes 8k..8k+8 are inside it.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * k), _mm256_mul_ps(d, v)) };
        }
    }
}

/// f16 to f32 (exact).
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub fn f16_to_f32(src: &[f16], out: &mut [f32]) {
    let n = src.len().min(out.len());
    let n8 = n / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths; f16 is 2 bytes.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
        i += 8;
    }
    for j in n8..n {
        out[j] = src[j].to_f32();
    }
}

/// Ask the cache for `bytes` ahead of their use (one `prefetcht0` per 64-byte line; reads
/// nothing architecturally, so it cannot change a result).
#[inline]
pub fn prefetch(bytes: &[u8]) {
    for at in (0..bytes.len()).step_by(64) {
        // SAFETY: `at` is inside `bytes`; a prefetch has no architectural effect (SSE, which
        // every x86_64 CPU has).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at) as *const i8) };
    }
}

/// Ask the cache for the `bytes` at `p`, which need not be inside any allocation: a prefetch
/// never faults and reads nothing architecturally (the fast kernels ask for the next panel's
/// block while they compute this one's, and the last panel has no next).
#[inline]
pub fn prefetch_at(p: *const u8, bytes: usize) {
    for at in (0..bytes).step_by(64) {
        // SAFETY: a prefetch has no architectural effect and never faults (SSE, which every
        // x86_64 CPU has); the address is computed without an in-bounds requirement.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at) as *const i8) };
    }
}

/// bf16 to f32 (exact: the 16 bits become the high half of the f32).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub fn bf16_to_f32(src: &[half::bf16], out: &mut [f32]) {
    let n = src.len().min(out.len());
    let n8 = n / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= both lengths; bf16 is 2 bytes.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            let w = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_castsi256_ps(w));
        }
        i += 8;
    }
    for j in n8..n {
        out[j] = src[j].to_f32();
    }
}

/// The AVX2 vector primitives for shared algorithms (attention). A value exists only where
/// an [`Avx2`] token does, so its safe methods never run AVX2 on a CPU without it.
#[derive(Clone, Copy, Debug)]
pub struct Avx2Ops {
    _cpu: Avx2,
}

impl Avx2Ops {
    pub fn new(cpu: Avx2) -> Avx2Ops {
        Avx2Ops { _cpu: cpu }
    }
}

impl VecOps for Avx2Ops {
    #[inline]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `self` holds an `Avx2` token: the CPU has AVX2 and FMA.
        unsafe { dot(a, b) }
    }

    #[inline]
    fn axpy(self, acc: &mut [f32], p: f32, v: &[f32]) {
        // SAFETY: as for `dot`.
        unsafe { axpy(acc, p, v) }
    }

    #[inline]
    fn dot4(self, a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
        // SAFETY: as for `dot`.
        unsafe { dot4(a, b) }
    }

    #[inline]
    fn exp_sub(self, x: &mut [f32], m: f32) {
        // SAFETY: as for `dot`.
        unsafe { exp_sub(x, m) }
    }

    #[inline]
    fn exp_sub_sum(self, x: &mut [f32], m: f32) -> f32 {
        // SAFETY: as for `dot`.
        unsafe { exp_sub_sum(x, m) }
    }

    #[inline]
    fn max(self, x: &[f32]) -> f32 {
        // SAFETY: as for `dot`.
        unsafe { max(x) }
    }

    #[inline]
    fn scale(self, x: &mut [f32], c: f32) {
        // SAFETY: as for `dot`.
        unsafe { scale(x, c) }
    }

    fn scores(self, q: &[&[f32]], k: &[&[f32]], scale: f32, out: &mut [[f32; KEY_BLOCK]]) {
        let hd = k.first().map_or(0, |r| r.len());
        if !hd.is_multiple_of(8) || q.iter().chain(k).any(|r| r.len() != hd) {
            return plain_scores(self, q, k, scale, out);
        }
        let (nq, nk) = (q.len(), k.len());
        let (q4, k2) = (nq / 4 * 4, nk / 2 * 2);
        for qi in (0..q4).step_by(4) {
            for j in (0..k2).step_by(2) {
                // SAFETY: the token proves AVX2 and FMA; every row has hd values, a multiple of 8.
                let s = unsafe { tile4x2([q[qi], q[qi + 1], q[qi + 2], q[qi + 3]], [k[j], k[j + 1]]) };
                for u in 0..4 {
                    out[qi + u][j] = s[2 * u] * scale;
                    out[qi + u][j + 1] = s[2 * u + 1] * scale;
                }
            }
        }
        score_edges(self, q, k, scale, out, (q4, k2));
    }

    fn pv(self, acc: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
        if !hd.is_multiple_of(8) || v.iter().any(|r| r.len() != hd) || acc.len() < p.len() * hd {
            return plain_pv(self, acc, hd, p, v);
        }
        for_row_groups(acc, hd, p, PV_ROWS, |rows, ps, n| {
            macro_rules! run {
                ($($n:literal)*) => {
                    match n {
                        // SAFETY: the token proves AVX2 and FMA; `rows` holds n rows of hd, every
                        // value row hd values, hd a multiple of 8.
                        $($n => unsafe { pv_rows::<$n>(rows, hd, ps, v) },)*
                        _ => unreachable!("1 ..= {PV_ROWS} rows"),
                    }
                };
            }
            run!(1 2 3 4 5 6 7 8 9 10 11 12);
        });
    }
}

/// Query rows whose accumulators [`VecOps::pv`] keeps in registers (12 of the 16).
const PV_ROWS: usize = 12;

/// `[q_u · k_w]` for 4 queries × 2 keys, as `s[u * 2 + w]`.
///
/// # Safety
/// AVX2 and FMA must be available; every row has the same length, a multiple of 8.
#[target_feature(enable = "avx2,fma")]
fn tile4x2(q: [&[f32]; 4], k: [&[f32]; 2]) -> [f32; 8] {
    let hd = q[0].len();
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut i = 0;
    while i < hd {
        // SAFETY: i + 8 <= hd, every row's length.
        let kv = unsafe {
            [
                _mm256_loadu_ps(k[0].as_ptr().add(i)),
                _mm256_loadu_ps(k[1].as_ptr().add(i)),
            ]
        };
        for u in 0..4 {
            // SAFETY: as above.
            let qv = unsafe { _mm256_loadu_ps(q[u].as_ptr().add(i)) };
            acc[2 * u] = _mm256_fmadd_ps(qv, kv[0], acc[2 * u]);
            acc[2 * u + 1] = _mm256_fmadd_ps(qv, kv[1], acc[2 * u + 1]);
        }
        i += 8;
    }
    let mut out = [0f32; 8];
    // SAFETY: one store of 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), hsum8(&acc)) };
    out
}

/// Lane `i` = the sum of `h[i]`'s lanes, for eight vectors.
///
/// # Safety
/// AVX2 must be available.
#[inline]
#[target_feature(enable = "avx2")]
pub fn hsum8(h: &[__m256; 8]) -> __m256 {
    let t0 = _mm256_hadd_ps(h[0], h[1]);
    let t1 = _mm256_hadd_ps(h[2], h[3]);
    let t2 = _mm256_hadd_ps(h[4], h[5]);
    let t3 = _mm256_hadd_ps(h[6], h[7]);
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(u0, u1),
        _mm256_permute2f128_ps::<0x31>(u0, u1),
    )
}

/// `rows[i] += Σ_j p[i][j] · v[j]` for `N` rows, 8 columns at a time held in registers.
///
/// # Safety
/// AVX2 and FMA must be available; `rows` holds `N` rows of `hd` (a multiple of 8) and every
/// value row `hd` values.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
fn pv_rows<const N: usize>(rows: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
    let base = rows.as_mut_ptr();
    let mut c = 0;
    while c < hd {
        // SAFETY: row i's columns c..c + 8 are inside `rows`.
        let mut a: [__m256; N] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(base.add(i * hd + c)) });
        for (j, vj) in v.iter().enumerate() {
            // SAFETY: c + 8 <= hd, the value row's length.
            let vv = unsafe { _mm256_loadu_ps(vj.as_ptr().add(c)) };
            for i in 0..N {
                a[i] = _mm256_fmadd_ps(_mm256_set1_ps(p[i][j]), vv, a[i]);
            }
        }
        for (i, ai) in a.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm256_storeu_ps(base.add(i * hd + c), *ai) };
        }
        c += 8;
    }
}

/// `exp(x)` for 8 lanes: Cephes' expf (range reduction by ln 2, degree-6 polynomial), within
/// 2 ulp of libm on the range it is used on; exactly 0 below −87.3 (and for −∞).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp8(x: __m256) -> __m256 {
    let lo = _mm256_set1_ps(-87.336_55);
    let underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    let x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.376_26));
    let n = _mm256_floor_ps(_mm256_fmadd_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
        _mm256_set1_ps(0.5),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2^n through the exponent bits.
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    ));
    _mm256_andnot_ps(underflow, _mm256_mul_ps(p, pow2))
}

/// `tanh(x)` for 8 lanes: Cephes' tanhf (odd polynomial below 0.625, `1 − 2/(e^{2|x|} + 1)`
/// above), a few ulp from libm.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn tanh8(x: __m256) -> __m256 {
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    let ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    // Small |x|: x + x³·P(x²).
    let z = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(c));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    // Large |x|: 1 − 2 / (exp(2|x|) + 1), with the sign put back (saturates to ±1).
    let e = exp8(_mm256_min_ps(_mm256_add_ps(ax, ax), _mm256_set1_ps(88.0)));
    let large = _mm256_sub_ps(
        _mm256_set1_ps(1.0),
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, _mm256_set1_ps(1.0))),
    );
    let large = _mm256_or_ps(large, sign);
    let use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625), _CMP_LT_OQ);
    _mm256_blendv_ps(large, small, use_small)
}

/// `gelu_tanh(g) · u` for 8 lanes: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn geglu8(x: __m256, u: __m256) -> __m256 {
    let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    let inner = _mm256_mul_ps(
        _mm256_set1_ps(0.797_884_6),
        _mm256_fmadd_ps(_mm256_set1_ps(0.044_715), x3, x),
    );
    let t = _mm256_add_ps(_mm256_set1_ps(1.0), tanh8(inner));
    _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), t), u)
}

/// `out[i] = gelu_tanh(g[i]) · u[i]`. The tail goes through the same 8-lane code (padded),
/// so a value never depends on its position in the slice.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn geglu(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = g.len().min(u.len()).min(out.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(8);
        let (mut gb, mut ub, mut ob) = ([0f32; 8], [0f32; 8], [0f32; 8]);
        gb[..m].copy_from_slice(&g[i..i + m]);
        ub[..m].copy_from_slice(&u[i..i + m]);
        // SAFETY: the three buffers hold 8 values each.
        unsafe {
            _mm256_storeu_ps(
                ob.as_mut_ptr(),
                geglu8(_mm256_loadu_ps(gb.as_ptr()), _mm256_loadu_ps(ub.as_ptr())),
            )
        };
        out[i..i + m].copy_from_slice(&ob[..m]);
        i += 8;
    }
}

/// `x[i] = exp(x[i] − m)`: [`exp_sub_sum`] without its sum.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp_sub(x: &mut [f32], m: f32) {
    exp_sub_sum(x, m);
}

/// `exp_sub` returning the sum of the results: eight lane sums, added pairwise at the end.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let mv = _mm256_set1_ps(m);
    let mut sum = _mm256_setzero_ps();
    let n8 = x.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= x.len().
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
            sum = _mm256_add_ps(sum, e);
        }
        i += 8;
    }
    if i < x.len() {
        let n = x.len() - i;
        let mut b = [f32::NEG_INFINITY; 8];
        b[..n].copy_from_slice(&x[i..]);
        // SAFETY: b holds 8 values; the −∞ padding contributes exp(−∞) = 0.
        unsafe {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(b.as_ptr()), mv));
            _mm256_storeu_ps(b.as_mut_ptr(), e);
            sum = _mm256_add_ps(sum, e);
        }
        x[i..].copy_from_slice(&b[..n]);
    }
    hsum(sum)
}

/// The largest value (−∞ when empty). Max is exact, so the order does not matter; NaNs are
/// ignored as `f32::max` ignores them (`maxps` returns its second operand when either is NaN).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub fn max(x: &[f32]) -> f32 {
    let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
    let n8 = x.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= x.len().
        best = _mm256_max_ps(unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) }, best);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), best) };
    lanes
        .into_iter()
        .chain(x[i..].iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `x[i] *= c`
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub fn scale(x: &mut [f32], c: f32) {
    let cv = _mm256_set1_ps(c);
    let n8 = x.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= x.len().
        unsafe {
            _mm256_storeu_ps(
                x.as_mut_ptr().add(i),
                _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), cv),
            )
        };
        i += 8;
    }
    for v in &mut x[i..] {
        *v *= c;
    }
}

/// Four dot products sharing `b`: one load of `b` feeds four FMA chains.
///
/// # Safety
/// The CPU must support AVX2 and FMA; every slice has `b`'s length.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn dot4(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let n = b.len();
    let n8 = n / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n8 <= every length.
        let bv = unsafe { _mm256_loadu_ps(b.as_ptr().add(i)) };
        for u in 0..4 {
            // SAFETY: as above.
            let av = unsafe { _mm256_loadu_ps(a[u].as_ptr().add(i)) };
            acc[u] = _mm256_fmadd_ps(av, bv, acc[u]);
        }
        i += 8;
    }
    let mut out = [0f32; 4];
    for u in 0..4 {
        let mut tail = 0f32;
        for j in n8..n {
            tail += a[u][j] * b[j];
        }
        out[u] = hsum(acc[u]) + tail;
    }
    out
}
