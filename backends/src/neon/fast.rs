//! The fast kernels on NEON: each 32-byte pair of a panel (16 rows × 2 columns) widens to four
//! 8-lane 16-bit vectors; `smlal`/`smlal2` multiply them by the broadcast activation pair into
//! 32-bit lanes holding (row, column) products, which a pairwise add folds per row at the
//! block's end. Two tokens per register tile (16 accumulators each).

use std::arch::aarch64::*;

use super::token::Neon;
use crate::cpu::CpuToken;
use crate::fast::pack::{form_block_bytes, scales_at, EXTRA_AT, HALF_OFFSETS_AT, PANEL};
use crate::fast::{quantize_block, FastTier, QTile, QBLOCK, TOKEN_TILE};
use crate::wtypes::{is_halves, HALVES_OFFSET, OFFSET, WIDE};

pub struct NeonFast;

impl FastTier for NeonFast {
    type Rows = super::rows::NeonRowOps;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        // Row-wise and light next to the dots: the specification itself.
        quantize_block(x, q)
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        crate::fast::quantize_row(x, q, d)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        let _ = Neon::get();
        assert!(panel.len() == tile.k / QBLOCK * form_block_bytes(FORM));
        let mut t = 0;
        while t < tile.tokens {
            let n = (tile.tokens - t).min(2);
            // SAFETY: the token proves NEON; the panel has one block per block of k (asserted)
            // and tokens t..t + n are in the tile.
            unsafe {
                if n == 2 {
                    tokens::<2, FORM>(tile, t, panel, out)
                } else {
                    tokens::<1, FORM>(tile, t, panel, out)
                }
            }
            t += n;
        }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        crate::fast::scalar::Scalar::geglu(g, u, h)
    }
}

/// Tokens `t0..t0 + N` of the tile against one panel of the form `FORM`.
///
/// # Safety
/// NEON must be available; `panel` holds `tile.k / 32` panel blocks of the form,
/// `t0 + N ≤ tile.tokens`.
#[target_feature(enable = "neon")]
#[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
unsafe fn tokens<const N: usize, const FORM: u8>(
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
    let mut acc_f = [[vdupq_n_f32(0.0); 4]; N];
    let base = panel.as_ptr();
    for b in 0..nb {
        // SAFETY: block b < nb is inside the panel (the caller's contract).
        let blk = unsafe { base.add(b * form_block_bytes(FORM)) };
        let xp: [*const i32; N] = std::array::from_fn(|t| tile.block_pairs(b, t0 + t));
        for step in 0..steps {
            // acc[t][v]: 32-bit lanes (row 2v', column c) products, 8 vectors of 4 per token.
            let mut acc = [[vdupq_n_s32(0); 8]; N];
            for i in step * pairs..(step + 1) * pairs {
                // Rows 0-3, 4-7, 8-11, 12-15: 8 i16 each (row, column) interleaved.
                // SAFETY: pair i's 32 bytes (64 in the wide form) inside the block.
                let w = unsafe {
                    if FORM == WIDE {
                        let p = blk.add(64 * i) as *const i16;
                        [
                            vld1q_s16(p),
                            vld1q_s16(p.add(8)),
                            vld1q_s16(p.add(16)),
                            vld1q_s16(p.add(24)),
                        ]
                    } else {
                        let (w0, w1) = (
                            vld1q_s8(blk.add(32 * i) as *const i8),
                            vld1q_s8(blk.add(32 * i + 16) as *const i8),
                        );
                        [
                            vmovl_s8(vget_low_s8(w0)),
                            vmovl_high_s8(w0),
                            vmovl_s8(vget_low_s8(w1)),
                            vmovl_high_s8(w1),
                        ]
                    }
                };
                for t in 0..N {
                    // SAFETY: pair i < 16 of token t0 + t's block b, inside the tile.
                    let x = vreinterpretq_s16_s32(vdupq_n_s32(unsafe { *xp[t].add(i) }));
                    for (v, wv) in w.iter().enumerate() {
                        acc[t][2 * v] = vmlal_s16(acc[t][2 * v], vget_low_s16(*wv), vget_low_s16(x));
                        acc[t][2 * v + 1] = vmlal_high_s16(acc[t][2 * v + 1], *wv, x);
                    }
                }
            }
            let at = if step == 0 { scales_at(FORM) } else { EXTRA_AT };
            // SAFETY: the 16 scales of this step inside the block.
            let sc: [float32x4_t; 4] =
                std::array::from_fn(|v| unsafe { vld1q_f32((blk.add(at) as *const f32).add(4 * v)) });
            for t in 0..N {
                let dx = vdupq_n_f32(tile.scale(t0 + t, b));
                for v in 0..4 {
                    // Lanes (r, c0), (r, c1), (r+1, c0), (r+1, c1) → per-row sums of rows 4v..4v+4.
                    let sums = vpaddq_s32(acc[t][2 * v], acc[t][2 * v + 1]);
                    let s = vmulq_f32(sc[v], dx);
                    acc_f[t][v] = vaddq_f32(acc_f[t][v], vmulq_f32(vcvtq_f32_s32(sums), s));
                }
            }
            if FORM == HALVES_OFFSET {
                let at = HALF_OFFSETS_AT[step];
                // SAFETY: this half's 16 offsets inside the block.
                let off: [float32x4_t; 4] =
                    std::array::from_fn(|v| unsafe { vld1q_f32((blk.add(at) as *const f32).add(4 * v)) });
                for t in 0..N {
                    let sx = vdupq_n_f32(tile.half_sum(t0 + t, b, step));
                    for v in 0..4 {
                        acc_f[t][v] = vaddq_f32(acc_f[t][v], vmulq_f32(off[v], sx));
                    }
                }
            }
        }
        if FORM == OFFSET {
            // SAFETY: the 16 offsets inside the block.
            let off: [float32x4_t; 4] =
                std::array::from_fn(|v| unsafe { vld1q_f32((blk.add(EXTRA_AT) as *const f32).add(4 * v)) });
            for t in 0..N {
                let sx = vdupq_n_f32(tile.sum(t0 + t, b));
                for v in 0..4 {
                    acc_f[t][v] = vaddq_f32(acc_f[t][v], vmulq_f32(off[v], sx));
                }
            }
        }
    }
    for t in 0..N {
        for v in 0..4 {
            // SAFETY: 4 floats at 4v of a row of 16.
            unsafe { vst1q_f32(out[t0 + t].as_mut_ptr().add(4 * v), acc_f[t][v]) };
        }
    }
}
