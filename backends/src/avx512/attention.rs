//! AVX-512 vector primitives for attention: scores in register tiles of 4 queries × 4 keys
//! (16-lane FMA chains, the 16 sums reduced together), and `p · V` with up to 12 query rows'
//! accumulators held in registers while a block's value rows stream past once.

use std::arch::x86_64::*;

use super::token::Avx512;
use crate::avx2::simd::{hsum8, Avx2Ops};
use crate::kernels::{for_row_groups, score_edges, VecOps, KEY_BLOCK};

/// The tier's primitives; a value exists only where an [`Avx512`] token does.
#[derive(Clone, Copy, Debug)]
pub struct Avx512Ops {
    avx2: Avx2Ops,
}

impl Avx512Ops {
    pub fn new(cpu: Avx512) -> Avx512Ops {
        Avx512Ops {
            avx2: Avx2Ops::new(cpu.avx2()),
        }
    }
}

/// Query rows whose accumulators `pv` keeps in registers.
const PV_ROWS: usize = 12;

impl VecOps for Avx512Ops {
    #[inline]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `self` holds an `Avx512` token.
        unsafe { super::matmul::dot(a, b) }
    }

    #[inline]
    fn axpy(self, acc: &mut [f32], p: f32, v: &[f32]) {
        self.avx2.axpy(acc, p, v)
    }

    #[inline]
    fn exp_sub(self, x: &mut [f32], m: f32) {
        self.avx2.exp_sub(x, m)
    }

    #[inline]
    fn exp_sub_sum(self, x: &mut [f32], m: f32) -> f32 {
        self.avx2.exp_sub_sum(x, m)
    }

    #[inline]
    fn max(self, x: &[f32]) -> f32 {
        self.avx2.max(x)
    }

    #[inline]
    fn scale(self, x: &mut [f32], c: f32) {
        self.avx2.scale(x, c)
    }

    fn scores(self, q: &[&[f32]], k: &[&[f32]], scale: f32, out: &mut [[f32; KEY_BLOCK]]) {
        let hd = k.first().map_or(0, |r| r.len());
        if !hd.is_multiple_of(16) || q.iter().chain(k).any(|r| r.len() != hd) {
            return self.avx2.scores(q, k, scale, out);
        }
        let (nq, nk) = (q.len(), k.len());
        let (q4, k4) = (nq / 4 * 4, nk / 4 * 4);
        for qi in (0..q4).step_by(4) {
            for j in (0..k4).step_by(4) {
                // SAFETY: the token proves AVX-512F/VL; every row has hd values, a multiple of 16.
                let s = unsafe {
                    tile4x4(
                        [q[qi], q[qi + 1], q[qi + 2], q[qi + 3]],
                        [k[j], k[j + 1], k[j + 2], k[j + 3]],
                    )
                };
                for u in 0..4 {
                    for w in 0..4 {
                        out[qi + u][j + w] = s[u * 4 + w] * scale;
                    }
                }
            }
        }
        score_edges(self, q, k, scale, out, (q4, k4));
    }

    fn pv(self, acc: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
        if !hd.is_multiple_of(16) || v.iter().any(|r| r.len() != hd) || acc.len() < p.len() * hd {
            return self.avx2.pv(acc, hd, p, v);
        }
        for_row_groups(acc, hd, p, PV_ROWS, |rows, ps, n| {
            macro_rules! run {
                ($($n:literal)*) => {
                    match n {
                        // SAFETY: the token proves AVX-512F; `rows` holds n rows of hd, every
                        // value row hd values, hd a multiple of 16.
                        $($n => unsafe { pv_rows::<$n>(rows, hd, ps, v) },)*
                        _ => unreachable!("1 ..= {PV_ROWS} rows"),
                    }
                };
            }
            run!(1 2 3 4 5 6 7 8 9 10 11 12);
        });
    }
}

/// `[q_u · k_w]` for 4 queries × 4 keys, as `s[u * 4 + w]`.
///
/// # Safety
/// AVX-512F/VL and FMA must be available; every row has the same length, a multiple of 16.
// VL lets the 256-bit reduction below read ymm16–31: without it the 16 accumulators must live
// in zmm0–15 and one of them is spilled to the stack inside the loop (a store-to-load chain
// that made this tile half as fast as `pv_rows`).
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn tile4x4(q: [&[f32]; 4], k: [&[f32]; 4]) -> [f32; 16] {
    let hd = q[0].len();
    let mut acc = [_mm512_setzero_ps(); 16];
    let mut i = 0;
    while i < hd {
        // SAFETY: i + 16 <= hd, every row's length.
        let kv: [__m512; 4] = std::array::from_fn(|w| unsafe { _mm512_loadu_ps(k[w].as_ptr().add(i)) });
        for u in 0..4 {
            // SAFETY: as above.
            let qv = unsafe { _mm512_loadu_ps(q[u].as_ptr().add(i)) };
            for w in 0..4 {
                acc[u * 4 + w] = _mm512_fmadd_ps(qv, kv[w], acc[u * 4 + w]);
            }
        }
        i += 16;
    }
    // 16 lanes → 8 per accumulator, then eight at a time through horizontal adds.
    let h: [__m256; 16] = std::array::from_fn(|a| {
        let v = acc[a];
        _mm256_add_ps(
            _mm512_castps512_ps256(v),
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)),
        )
    });
    let (lo, hi): ([__m256; 8], [__m256; 8]) = (std::array::from_fn(|a| h[a]), std::array::from_fn(|a| h[8 + a]));
    let mut out = [0f32; 16];
    // SAFETY: two stores of 8 into 16 floats; the token implies AVX2.
    unsafe {
        _mm256_storeu_ps(out.as_mut_ptr(), hsum8(&lo));
        _mm256_storeu_ps(out.as_mut_ptr().add(8), hsum8(&hi));
    }
    out
}

/// `rows[i] += Σ_j p[i][j] · v[j]` for `N` rows, 16 columns at a time held in registers.
///
/// # Safety
/// AVX-512F and FMA must be available; `rows` holds `N` rows of `hd` (a multiple of 16) and
/// every value row `hd` values.
#[target_feature(enable = "avx512f,fma")]
fn pv_rows<const N: usize>(rows: &mut [f32], hd: usize, p: &[[f32; KEY_BLOCK]], v: &[&[f32]]) {
    let base = rows.as_mut_ptr();
    let mut c = 0;
    while c < hd {
        // SAFETY: row i's columns c..c + 16 are inside `rows`.
        let mut a: [__m512; N] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(base.add(i * hd + c)) });
        for (j, vj) in v.iter().enumerate() {
            // SAFETY: c + 16 <= hd, the value row's length.
            let vv = unsafe { _mm512_loadu_ps(vj.as_ptr().add(c)) };
            for i in 0..N {
                a[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i][j]), vv, a[i]);
            }
        }
        for (i, ai) in a.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_storeu_ps(base.add(i * hd + c), *ai) };
        }
        c += 16;
    }
}
