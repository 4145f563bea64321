//! The AVX-512 tier's exact matmul tiles for the shared drivers ([`crate::tiled`]): 16-lane FMA
//! over rows decoded by the AVX2 tier's decoders.

use std::arch::x86_64::*;

use super::token::Avx512;
use crate::avx2::matmul as mm;
use crate::kernels::Activations;
use crate::tiled::{Decoder, Tiles};
use crate::wtypes::WeightType;

/// 16-lane FMA tiles of 8 tokens × 2 weight rows: 16 of the 32 registers accumulate, so each
/// activation load feeds two FMAs and each weight load eight (the AVX2 tiles are load-bound).
/// Measured against 8 × 3 (24 accumulators): that one was no faster here (register pressure).
pub struct Avx512Tiles;

/// Tokens per register tile.
const TILE_TOKENS: usize = 8;

impl Tiles for Avx512Tiles {
    type Cpu = Avx512;
    const ROWS: usize = 2;
    fn decoder<W: WeightType>() -> Decoder {
        mm::decoder::<W>()
    }
    fn dots(
        _: Avx512,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        mut put: impl FnMut(usize, usize, f32),
    ) {
        let mut t = t0;
        while t + TILE_TOKENS <= t1 {
            let xs: [&[f32]; TILE_TOKENS] = std::array::from_fn(|i| x.row(t + i));
            if let [a, b] = rows {
                // SAFETY: the token proves AVX-512F and FMA; rows have the weights' length.
                let d = unsafe { tile::<2>(xs, [a, b]) };
                emit(t, &d, &mut put);
            } else {
                // SAFETY: as above.
                let d = unsafe { tile::<1>(xs, [rows[0]]) };
                emit(t, &d, &mut put);
            }
            t += TILE_TOKENS;
        }
        for t in t..t1 {
            let xt = x.row(t);
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: as above.
                put(t, r, unsafe { dot(xt, row) });
            }
        }
    }
    fn geglu(cpu: Avx512, g: &[f32], u: &[f32], h: &mut [f32]) {
        mm::Avx2Tiles::geglu(cpu.avx2(), g, u, h)
    }
    fn prefetch(bytes: &[u8]) {
        mm::Avx2Tiles::prefetch(bytes)
    }
}

fn emit<const M: usize>(t: usize, d: &[[f32; M]; TILE_TOKENS], put: &mut impl FnMut(usize, usize, f32)) {
    for (i, row) in d.iter().enumerate() {
        for (r, &v) in row.iter().enumerate() {
            put(t + i, r, v);
        }
    }
}

/// The mask of the `left` (< 16) lanes a row's tail fills.
#[inline]
fn tail_mask(left: usize) -> __mmask16 {
    ((1u32 << left) - 1) as __mmask16
}

/// `[x_t · w_r]` for eight tokens and `M` rows: 16 lanes, the tail through masked loads
/// (zeros past the end), lanes reduced by `_mm512_reduce_add_ps` — the same sums [`dot`]
/// gives.
///
/// # Safety
/// AVX-512F and FMA must be available; every slice has `w[0]`'s length.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn tile<const M: usize>(x: [&[f32]; TILE_TOKENS], w: [&[f32]; M]) -> [[f32; M]; TILE_TOKENS] {
    let k = w[0].len();
    let k16 = k / 16 * 16;
    let xp = x.map(|r| r.as_ptr());
    let wp = w.map(|r| r.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); M]; TILE_TOKENS];
    let mut wv = [_mm512_setzero_ps(); M];
    let mut i = 0;
    while i < k16 {
        for r in 0..M {
            // SAFETY: i + 16 <= k16 <= every row's length.
            wv[r] = unsafe { _mm512_loadu_ps(wp[r].add(i)) };
        }
        for t in 0..TILE_TOKENS {
            // SAFETY: as above.
            let xv = unsafe { _mm512_loadu_ps(xp[t].add(i)) };
            for r in 0..M {
                acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
            }
        }
        i += 16;
    }
    if k16 < k {
        let m = tail_mask(k - k16);
        for r in 0..M {
            // SAFETY: masked-off lanes are not read; the others are inside the row.
            wv[r] = unsafe { _mm512_maskz_loadu_ps(m, wp[r].add(k16)) };
        }
        for t in 0..TILE_TOKENS {
            // SAFETY: as above.
            let xv = unsafe { _mm512_maskz_loadu_ps(m, xp[t].add(k16)) };
            for r in 0..M {
                acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
            }
        }
    }
    let mut out = [[0f32; M]; TILE_TOKENS];
    for t in 0..TILE_TOKENS {
        for r in 0..M {
            out[t][r] = _mm512_reduce_add_ps(acc[t][r]);
        }
    }
    out
}

/// `Σ a[i]·b[i]` as one lane of [`tile`] computes it.
///
/// # Safety
/// AVX-512F and FMA must be available; `a.len() == b.len()`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = b.len();
    let k16 = k / 16 * 16;
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < k16 {
        // SAFETY: i + 16 <= k16 <= both lengths.
        let (x, y) = unsafe { (_mm512_loadu_ps(a.as_ptr().add(i)), _mm512_loadu_ps(b.as_ptr().add(i))) };
        acc = _mm512_fmadd_ps(x, y, acc);
        i += 16;
    }
    if k16 < k {
        let m = tail_mask(k - k16);
        // SAFETY: masked-off lanes are not read; the others are inside both slices.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, a.as_ptr().add(k16)),
                _mm512_maskz_loadu_ps(m, b.as_ptr().add(k16)),
            )
        };
        acc = _mm512_fmadd_ps(x, y, acc);
    }
    _mm512_reduce_add_ps(acc)
}
