//! The int8 kernels on AVX-512 with VNNI: a quads panel's 16 rows × 4 columns fill one
//! register; four broadcast activation bytes meet them in one `vpdpbusd` (64 products), up to
//! eight tokens per register tile, for the symmetric, offset and halves forms.

use std::arch::x86_64::*;

use super::fast::{has_vnni, quantize_lanes};
use super::token::Avx512;
use crate::avx2::simd::prefetch_at;
use crate::cpu::CpuToken;
use crate::fast::int8::{quantize_blocks8, Int8Tier, QMAX8};
use crate::fast::pack::{form_block_bytes, quad_bias, EXTRA_AT, HALF_OFFSETS_AT, PANEL, SCALES_AT};
use crate::fast::{QTile, QBLOCK, TOKEN_TILE};
use crate::wtypes::{is_halves, HALVES_OFFSET, OFFSET};

/// The int8 kernels on AVX-512 VNNI (which the tier's table requires for them).
pub struct Avx512Int8;

impl Int8Tier for Avx512Int8 {
    type Rows = crate::avx2::rows::Avx2RowOps;

    fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
        let _ = Avx512::get();
        // SAFETY: the token proves AVX-512F/BW; `quantize_blocks8` hands over one block at a time.
        quantize_blocks8(x, q, d, sums, |xb, qb| unsafe { quantize8(xb, qb) })
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        let _ = Avx512::get();
        assert!(has_vnni(), "int8 kernels on a CPU without AVX-512 VNNI");
        assert!(panel.len() == tile.k / QBLOCK * form_block_bytes(FORM));
        let mut t = 0;
        while t < tile.tokens {
            let n = (tile.tokens - t).min(8);
            macro_rules! run {
                ($($n:literal)*) => {
                    match n {
                        $(
                            // SAFETY: the token proves AVX-512F/BW and `has_vnni` VNNI; the
                            // panel has one block per block of k (asserted); tokens t..t + n
                            // are in the tile.
                            $n => unsafe { tokens8::<$n, FORM>(tile, t, panel, out) },
                        )*
                        _ => unreachable!("1 ..= 8 tokens"),
                    }
                };
            }
            run!(1 2 3 4 5 6 7 8);
            t += n;
        }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        <super::fast::Avx512Fast as crate::fast::FastTier>::geglu(g, u, h)
    }
}

/// [`crate::fast::int8::quantize_block8`] in two 16-lane vectors.
///
/// # Safety
/// AVX-512F/BW must be available; `x` and `q` hold 32 values.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize8(x: &[f32], q: &mut [i8]) -> f32 {
    assert!(x.len() == QBLOCK && q.len() == QBLOCK);
    // SAFETY: x holds 32 values (asserted).
    let Some((quants, d)) = (unsafe { quantize_lanes(x, QMAX8) }) else {
        q.fill(0);
        return f32::NAN;
    };
    for (h, i) in quants.into_iter().enumerate() {
        // Narrowed to bytes (exact: clamped to ±127).
        // SAFETY: 16 bytes of q from 16h (asserted 32).
        unsafe { _mm_storeu_si128(q.as_mut_ptr().add(16 * h) as *mut __m128i, _mm512_cvtepi32_epi8(i)) };
    }
    d
}

/// Tokens `t0..t0 + N` of the tile against one quads panel of the form `FORM`, the operations
/// of [`crate::fast::int8::panel_dots8`] 16 rows at a time: each step's integer sums start at
/// `-bias · Σx_q` (the unsigned weights' excess), take `vpdpbusd` per quad, then scale into the
/// f32 accumulators.
///
/// # Safety
/// AVX-512F/BW and VNNI must be available; `panel` holds `tile.k / 32` panel blocks of the form
/// and `t0 + N ≤ tile.tokens`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tokens8<const N: usize, const FORM: u8>(
    tile: &QTile,
    t0: usize,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    let nb = tile.k / QBLOCK;
    let bias = quad_bias(FORM);
    // The halves form sums (and scales) quads 0..4 and 4..8 apart.
    let (steps, quads) = if is_halves(FORM) { (2, 4) } else { (1, 8) };
    // Each token's row: block b's quads at word 8b, its scale at k/4 + b, its half sums at
    // k/4 + nb + 2b (checked once here: the accessor bounds the row).
    let mut rows = [std::ptr::null::<u32>(); N];
    for (t, r) in rows.iter_mut().enumerate() {
        *r = tile.row8_ptr(t0 + t);
    }
    let (scales_w, sums_w) = (tile.k / 4, tile.k / 4 + nb);
    let mut acc_f = [_mm512_setzero_ps(); N];
    let base = panel.as_ptr();
    for b in 0..nb {
        // SAFETY: block b < nb is inside the panel (the caller's contract).
        let blk = unsafe { base.add(b * form_block_bytes(FORM)) };
        // The next panel's block b, on its way from memory while this one computes.
        if t0 == 0 {
            prefetch_at(blk.wrapping_add(panel.len()), form_block_bytes(FORM));
        }
        let mut dx_s = [0f32; N];
        let mut halves = [[0i32; 2]; N];
        for t in 0..N {
            // SAFETY: block b < nb's scale and half sums inside a row of `row8_words(k)` words
            // (see the module docs of `fast::int8`).
            unsafe {
                dx_s[t] = f32::from_bits(*rows[t].add(scales_w + b));
                halves[t] = [
                    *rows[t].add(sums_w + 2 * b) as i32,
                    *rows[t].add(sums_w + 2 * b + 1) as i32,
                ];
            }
        }
        for step in 0..steps {
            let mut acc_i = [_mm512_setzero_si512(); N];
            for t in 0..N {
                let sx = if is_halves(FORM) {
                    halves[t][step]
                } else {
                    halves[t][0] + halves[t][1]
                };
                acc_i[t] = _mm512_set1_epi32(-bias * sx);
            }
            for j in step * quads..(step + 1) * quads {
                // SAFETY: quad j's 64 bytes inside the block.
                let w = unsafe { _mm512_loadu_si512(blk.add(64 * j) as *const __m512i) };
                for t in 0..N {
                    // SAFETY: quad j < 8 of block b of token t0 + t's row.
                    let x = _mm512_set1_epi32(unsafe { *rows[t].add(b * QBLOCK / 4 + j) } as i32);
                    acc_i[t] = _mm512_dpbusd_epi32(acc_i[t], w, x);
                }
            }
            let at = if step == 0 { SCALES_AT } else { EXTRA_AT };
            // SAFETY: the 16 scales of this step inside the block.
            let sc = unsafe { _mm512_loadu_ps(blk.add(at) as *const f32) };
            for t in 0..N {
                let s = _mm512_mul_ps(sc, _mm512_set1_ps(dx_s[t]));
                acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(_mm512_cvtepi32_ps(acc_i[t]), s));
            }
            if FORM == HALVES_OFFSET {
                // SAFETY: this half's 16 offsets inside the block.
                let off = unsafe { _mm512_loadu_ps(blk.add(HALF_OFFSETS_AT[step]) as *const f32) };
                for t in 0..N {
                    let sx = _mm512_set1_ps(halves[t][step] as f32 * dx_s[t]);
                    acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(off, sx));
                }
            }
        }
        if FORM == OFFSET {
            // SAFETY: the 16 offsets inside the block.
            let off = unsafe { _mm512_loadu_ps(blk.add(EXTRA_AT) as *const f32) };
            for t in 0..N {
                let sx = _mm512_set1_ps((halves[t][0] + halves[t][1]) as f32 * dx_s[t]);
                acc_f[t] = _mm512_add_ps(acc_f[t], _mm512_mul_ps(off, sx));
            }
        }
    }
    for t in 0..N {
        // SAFETY: 16 floats into a row of 16.
        unsafe { _mm512_storeu_ps(out[t0 + t].as_mut_ptr(), acc_f[t]) };
    }
}
