//! The specification of the fast kernels: plain Rust over the packed panels.

use super::drive::FastTier;
use super::pack::{extras, form_block_bytes, half_offsets, scales, wide_scales, PANEL};
use super::qrows::{quantize_block, quantize_row, QTile, QBLOCK, TOKEN_TILE};
use crate::wtypes::{is_halves, HALVES_OFFSET, OFFSET, WIDE};

/// The scalar tier.
pub struct Scalar;

impl FastTier for Scalar {
    type Rows = crate::rows::ScalarRows;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        quantize_block(x, q)
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        quantize_row(x, q, d)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        for (t, o) in out.iter_mut().enumerate().take(tile.tokens) {
            *o = panel_dots::<FORM>(tile, t, panel);
        }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        for ((h, &g), &u) in h.iter_mut().zip(g).zip(u) {
            *h = crate::math::gelu_one(g) * u;
        }
    }
}

/// Token `t` of the tile against the 16 rows of a panel of the form `FORM`: per block the
/// exact integer sum of the 32 products, then `acc += (sum as f32) · (d_w · d_x)`. The halves
/// forms sum the two 16-value halves apart and add each with its own scale, first half
/// first; the offset form then adds `o_w · Σx` (`Σx` the block's quantized sum), the halves
/// with offsets each half's `o_h · Σx_h` (the half's sum) right after that half's products;
/// the wide form's quants are 16-bit.
pub fn panel_dots<const FORM: u8>(tile: &QTile, t: usize, panel: &[u8]) -> [f32; PANEL] {
    let mut acc = [0f32; PANEL];
    let pair_sums = |b: usize, blk: &[u8], pairs: std::ops::Range<usize>| {
        let mut sums = [0i32; PANEL];
        for i in pairs {
            let (x0, x1) = tile.pair(t, b * QBLOCK / 2 + i);
            let (x0, x1) = (x0 as i32, x1 as i32);
            if FORM == WIDE {
                let pairs = &blk[i * PANEL * 4..(i + 1) * PANEL * 4];
                for (s, w) in sums.iter_mut().zip(pairs.chunks_exact(4)) {
                    let (w0, w1) = (i16::from_le_bytes([w[0], w[1]]), i16::from_le_bytes([w[2], w[3]]));
                    *s += w0 as i32 * x0 + w1 as i32 * x1;
                }
                continue;
            }
            let pairs = &blk[i * PANEL * 2..(i + 1) * PANEL * 2];
            for (s, w) in sums.iter_mut().zip(pairs.chunks_exact(2)) {
                *s += w[0] as i8 as i32 * x0 + w[1] as i8 as i32 * x1;
            }
        }
        sums
    };
    for (b, blk) in panel.chunks_exact(form_block_bytes(FORM)).enumerate() {
        let sc = if FORM == WIDE { wide_scales(blk) } else { scales(blk) };
        let dx = tile.scale(t, b);
        if is_halves(FORM) {
            let sc2 = extras(blk);
            let (lo, hi) = (
                pair_sums(b, blk, 0..QBLOCK / 4),
                pair_sums(b, blk, QBLOCK / 4..QBLOCK / 2),
            );
            for (h, (sums, sc)) in [(lo, sc), (hi, sc2)].into_iter().enumerate() {
                for r in 0..PANEL {
                    acc[r] += sums[r] as f32 * (sc[r] * dx);
                }
                if FORM == HALVES_OFFSET {
                    let (off, sx) = (half_offsets(blk, h), tile.half_sum(t, b, h));
                    for r in 0..PANEL {
                        acc[r] += off[r] * sx;
                    }
                }
            }
            continue;
        }
        let sums = pair_sums(b, blk, 0..QBLOCK / 2);
        for r in 0..PANEL {
            acc[r] += sums[r] as f32 * (sc[r] * dx);
        }
        if FORM == OFFSET {
            let (off, sx) = (extras(blk), tile.sum(t, b));
            for r in 0..PANEL {
                acc[r] += off[r] * sx;
            }
        }
    }
    acc
}
