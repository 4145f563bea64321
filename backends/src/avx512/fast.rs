//! The fast kernels on AVX-512: a panel's 16 rows fill one 16-lane register; each broadcast
//! pair of 16-bit activations meets a pair of every row in one `vpdpwssd` (VNNI) or
//! `vpmaddwd` + `vpaddd` (AVX-512BW without VNNI), up to eight tokens per register tile, for
//! every panel form (symmetric, offset, halves).

use std::arch::x86_64::*;

use super::token::Avx512;
use crate::avx2::simd::{geglu, prefetch_at};
use crate::cpu::CpuToken;
use crate::fast::pack::{form_block_bytes, scales_at, EXTRA_AT, HALF_OFFSETS_AT, PANEL};
use crate::fast::{block_scales_for, FastTier, QTile, QBLOCK, QMAX, TOKEN_TILE};
use crate::wtypes::{is_halves, HALVES_OFFSET, OFFSET, WIDE};

/// Whether this CPU has AVX-512 VNNI.
pub fn has_vnni() -> bool {
    crate::cpu::has(crate::cpu::Feature::Avx512vnni)
}

/// The tier's fast kernels: `vpdpwssd` where the CPU has VNNI, else `vpmaddwd` + `vpaddd`.
pub struct Avx512Fast;

/// The same kernels held to `vpmaddwd` + `vpaddd` whatever the CPU has, so the path CPUs
/// without VNNI take is tested on CPUs with it (`super::without_vnni`).
pub struct Avx512BwFast;

impl FastTier for Avx512BwFast {
    type Rows = crate::avx2::rows::Avx2RowOps;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        Avx512Fast::quantize(x, q)
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        Avx512Fast::quantize_row(x, q, d)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        dots::<FORM>(tile, panel, out, false)
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        Avx512Fast::geglu(g, u, h)
    }
}

impl FastTier for Avx512Fast {
    type Rows = crate::avx2::rows::Avx2RowOps;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        let _ = Avx512::get();
        assert!(x.len() == QBLOCK && q.len() == QBLOCK);
        // SAFETY: the token proves AVX-512F/BW; both slices hold one block.
        unsafe { quantize(x, q) }
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        let _ = Avx512::get();
        // SAFETY: the token proves AVX-512F/BW; `quantize_blocks` hands over one block at a time.
        crate::fast::quantize_blocks(x, q, d, |xb, qb| unsafe { quantize(xb, qb) })
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        dots::<FORM>(tile, panel, out, has_vnni())
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        let _ = Avx512::get();
        // SAFETY: the AVX-512 token implies AVX2 and FMA.
        unsafe { geglu(g, u, h) }
    }
}

/// Every token of the tile against one panel of the form `FORM`, with or without VNNI.
fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE], vnni: bool) {
    let _ = Avx512::get();
    assert!(panel.len() == tile.k / QBLOCK * form_block_bytes(FORM));
    assert!(!vnni || has_vnni(), "VNNI kernels on a CPU without VNNI");
    let mut t = 0;
    while t < tile.tokens {
        let n = (tile.tokens - t).min(8);
        macro_rules! run {
            ($($n:literal)*) => {
                match (n, vnni) {
                    $(
                        // SAFETY: the token proves AVX-512F/BW and `has_vnni` VNNI; the panel
                        // has one block per block of k (asserted); tokens t..t + n are in
                        // the tile.
                        ($n, true) => unsafe { tokens_vnni::<$n, FORM>(tile, t, panel, out) },
                        // SAFETY: as above, without VNNI.
                        ($n, false) => unsafe { tokens_bw::<$n, FORM>(tile, t, panel, out) },
                    )*
                    _ => unreachable!("1 ..= 8 tokens"),
                }
            };
        }
        run!(1 2 3 4 5 6 7 8);
        t += n;
    }
}

/// [`crate::fast::quantize_block`] in two 16-lane vectors.
///
/// # Safety
/// AVX-512F/BW must be available; `x` and `q` hold 32 values.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
    assert!(q.len() == QBLOCK);
    // SAFETY: x holds 32 values (the caller's contract).
    let Some((quants, d)) = (unsafe { quantize_lanes(x, QMAX) }) else {
        q.fill(0);
        return f32::NAN;
    };
    for (h, i) in quants.into_iter().enumerate() {
        // SAFETY: 16 values of q from 16h (asserted 32).
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().add(16 * h) as *mut __m256i, _mm512_cvtepi32_epi16(i)) };
    }
    d
}

/// The block quantization both integer precisions share, up to the store: a block's 32 values
/// times `1/d` (`d` from [`block_scales_for`] with `qmax`), rounded half to even (the default
/// rounding mode) and clamped to ±`qmax`, as two vectors of 16 i32, with `d`; `None` when the
/// block holds a NaN or an infinity.
///
/// # Safety
/// AVX-512F/BW must be available; `x` holds 32 values.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_lanes(x: &[f32], qmax: f32) -> Option<([__m512i; 2], f32)> {
    // SAFETY: 2 × 16 values inside x (the caller's contract).
    let v: [__m512; 2] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(x.as_ptr().add(16 * i)) });
    let abs = [_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])];
    let inf = _mm512_set1_ps(f32::INFINITY);
    let bad = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(abs[0], inf) | _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(abs[1], inf);
    if bad != 0 {
        return None;
    }
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(abs[0], abs[1]));
    let (d, id) = block_scales_for(amax, qmax);
    let idv = _mm512_set1_ps(id);
    let (lo, hi) = (_mm512_set1_epi32(-(qmax as i32)), _mm512_set1_epi32(qmax as i32));
    let q = v.map(|a| _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(a, idv)))));
    Some((q, d))
}

/// The register tile: tokens `t0..t0 + N` against one panel of the form `FORM`, the pair
/// product written once per instruction set. The f32 operations are
/// [`crate::fast::scalar::panel_dots`]'s, in its order, 16 rows at a time.
macro_rules! tokens_kernel {
    ($name:ident, $features:literal, |$acc:ident, $w:ident, $x:ident| $mac:expr) => {
        /// Tokens `t0..t0 + N` of the tile against one panel of the form `FORM`.
        ///
        /// # Safety
        /// The features must be available; `panel` holds `tile.k / 32` panel blocks of the
        /// form and `t0 + N ≤ tile.tokens`.
        #[target_feature(enable = $features)]
        unsafe fn $name<const N: usize, const FORM: u8>(
            tile: &QTile,
            t0: usize,
            panel: &[u8],
            out: &mut [[f32; PANEL]; TOKEN_TILE],
        ) {
            let nb = tile.k / QBLOCK;
            // The halves form sums (and scales) pairs 0..8 and 8..16 apart.
            let (steps, pairs) = if is_halves(FORM) {
                (2, QBLOCK / 4)
            } else {
                (1, QBLOCK / 2)
            };
            let mut acc_f = [_mm512_setzero_ps(); N];
            let base = panel.as_ptr();
            for b in 0..nb {
                // SAFETY: block b < nb is inside the panel (the caller's contract).
                let blk = unsafe { base.add(b * form_block_bytes(FORM)) };
                // The next panel's block b, on its way from memory while this one computes
                // (only the first register tile asks; the next tiles find it in flight).
                if t0 == 0 {
                    prefetch_at(blk.wrapping_add(panel.len()), form_block_bytes(FORM));
                }
                // The tile's pairs of this block, per token.
                let xp: [*const i32; N] = std::array::from_fn(|t| tile.block_pairs(b, t0 + t));
                let dx: [__m512; N] = std::array::from_fn(|t| _mm512_set1_ps(tile.scale(t0 + t, b)));
                for step in 0..steps {
                    let mut acc_i = [_mm512_setzero_si512(); N];
                    for i in step * pairs..(step + 1) * pairs {
                        // SAFETY: pair i's 32 bytes (64 in the wide form) inside the block.
                        let $w = unsafe {
                            if FORM == WIDE {
                                _mm512_loadu_si512(blk.add(64 * i) as *const __m512i)
                            } else {
                                _mm512_cvtepi8_epi16(_mm256_loadu_si256(blk.add(32 * i) as *const __m256i))
                            }
                        };
                        for t in 0..N {
                            // SAFETY: pair i < 16 of token t0 + t's block b, inside the tile.
                            let $x = _mm512_set1_epi32(unsafe { *xp[t].add(i) });
                            let $acc = acc_i[t];
                            acc_i[t] = $mac;
                        }
                    }
                    let at = if step == 0 { scales_at(FORM) } else { EXTRA_AT };
                    // SAFETY: the 16 scales of this step inside the block.
                    let sc = unsafe { _mm512_loadu_ps(blk.add(at) as *const f32) };
                    for t in 0..N {
                        let s = _mm512_mul_ps(sc, dx[t]);
                        acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(_mm512_cvtepi32_ps(acc_i[t]), s));
                    }
                    if FORM == HALVES_OFFSET {
                        // SAFETY: this half's 16 offsets inside the block.
                        let off = unsafe { _mm512_loadu_ps(blk.add(HALF_OFFSETS_AT[step]) as *const f32) };
                        for t in 0..N {
                            let sx = _mm512_set1_ps(tile.half_sum(t0 + t, b, step));
                            acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(off, sx));
                        }
                    }
                }
                if FORM == OFFSET {
                    // SAFETY: the 16 offsets inside the block.
                    let off = unsafe { _mm512_loadu_ps(blk.add(EXTRA_AT) as *const f32) };
                    for t in 0..N {
                        let sx = _mm512_set1_ps(tile.sum(t0 + t, b));
                        acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(off, sx));
                    }
                }
            }
            for t in 0..N {
                // SAFETY: 16 floats into a row of 16.
                unsafe { _mm512_storeu_ps(out[t0 + t].as_mut_ptr(), acc_f[t]) };
            }
        }
    };
}

tokens_kernel!(tokens_vnni, "avx512f,avx512bw,avx512vnni", |acc, w, x| {
    _mm512_dpwssd_epi32(acc, w, x)
});
tokens_kernel!(tokens_bw, "avx512f,avx512bw", |acc, w, x| _mm512_add_epi32(
    acc,
    _mm512_madd_epi16(w, x)
));
