//! The NEON tier's exact matmul parts for the shared drivers ([`crate::tiled`]): Q8_0 and BF16
//! row decoders (exact, as the specification) and 4-token × 2-row FMA register tiles whose two
//! 4-lane accumulators per dot stand for the scalar kernel's eight lanes, summed in its order.

use std::arch::aarch64::*;

use gg_ops::{BlockQ8_0, DType, WeightView, QK8_0};

use super::token::Neon;
use crate::cpu::CpuToken;
use crate::kernels::Activations;
use crate::tiled::{Decoder, RowDecoder, Tiles};
use crate::wtypes::WeightType;

/// Q8_0 blocks: `d · q`, the quants widened to f32 four at a time.
pub struct Q8Rows;

impl RowDecoder for Q8Rows {
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let _ = Neon::get();
        let per_row = w.cols() / QK8_0;
        let first = j * per_row + k0 / QK8_0;
        let blocks = &w.cast::<BlockQ8_0>()[first..first + out.len() / QK8_0];
        for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
            let d = b.d.to_f32();
            // SAFETY: the token proves NEON; a block holds 32 quants and `o` 32 values.
            unsafe {
                let dv = vdupq_n_f32(d);
                for h in 0..2 {
                    let q = vld1q_s8(b.qs.as_ptr().add(16 * h));
                    let wide = [vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q)];
                    for (p, w16) in wide.into_iter().enumerate() {
                        let quads = [vmovl_s16(vget_low_s16(w16)), vmovl_high_s16(w16)];
                        for (u, q32) in quads.into_iter().enumerate() {
                            let at = o.as_mut_ptr().add(16 * h + 8 * p + 4 * u);
                            vst1q_f32(at, vmulq_f32(dv, vcvtq_f32_s32(q32)));
                        }
                    }
                }
            }
        }
    }
}

/// BF16 halves widened to f32 (a 16-bit shift: exact).
pub struct Bf16Rows;

impl RowDecoder for Bf16Rows {
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let _ = Neon::get();
        let start = j * w.cols() + k0;
        let src = &w.cast::<u16>()[start..start + out.len()];
        let n4 = src.len() / 4 * 4;
        // SAFETY: the token proves NEON; every access is below n4 ≤ both lengths.
        unsafe {
            for i in (0..n4).step_by(4) {
                let wide = vshll_n_u16::<16>(vld1_u16(src.as_ptr().add(i)));
                vst1q_f32(out.as_mut_ptr().add(i), vreinterpretq_f32_u32(wide));
            }
        }
        for i in n4..src.len() {
            out[i] = f32::from_bits((src[i] as u32) << 16);
        }
    }
}

/// 4-lane FMA tiles of 4 tokens × 2 rows.
pub struct NeonTiles;

impl Tiles for NeonTiles {
    type Cpu = Neon;
    const ROWS: usize = 2;
    fn decoder<W: WeightType>() -> Decoder {
        match W::DTYPE {
            DType::Q8_0 => Decoder::of::<Q8Rows>(),
            DType::BF16 => Decoder::of::<Bf16Rows>(),
            _ => Decoder::spec::<W>(),
        }
    }
    fn dots(
        _: Neon,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        mut put: impl FnMut(usize, usize, f32),
    ) {
        let (a, b) = (rows[0], rows.get(1).copied().unwrap_or(rows[0]));
        let mut t = t0;
        while t < t1 {
            let n = (t1 - t).min(4);
            macro_rules! run {
                ($($n:literal)*) => {
                    match n {
                        $($n => {
                            let xs: [&[f32]; $n] = std::array::from_fn(|i| x.row(t + i));
                            // SAFETY: the token proves NEON; every row has the weights' length.
                            let dots = unsafe { tile_nx2::<$n>(xs, a, b) };
                            for (i, d) in dots.into_iter().enumerate() {
                                for (r, &v) in d.iter().enumerate().take(rows.len()) {
                                    put(t + i, r, v);
                                }
                            }
                        })*
                        _ => unreachable!("1 ..= 4 tokens"),
                    }
                };
            }
            run!(1 2 3 4);
            t += n;
        }
    }
    fn geglu(_: Neon, g: &[f32], u: &[f32], h: &mut [f32]) {
        <crate::fast::scalar::Scalar as crate::fast::FastTier>::geglu(g, u, h)
    }
}

/// `[x_t · w_r]` for `N` tokens and two rows: per dot, lanes 0–3 and 4–7 of the scalar
/// kernel's eight in two FMA chains, then `(l0+l4) + (l1+l5)` and `(l2+l6) + (l3+l7)` added,
/// then the tail past the last whole eight.
///
/// # Safety
/// NEON must be available; every slice has `w0`'s length.
#[target_feature(enable = "neon")]
#[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
fn tile_nx2<const N: usize>(x: [&[f32]; N], w0: &[f32], w1: &[f32]) -> [[f32; 2]; N] {
    let k = w0.len();
    let k8 = k / 8 * 8;
    let zero = vdupq_n_f32(0.0);
    // acc[t][r][half]
    let mut acc = [[[zero; 2]; 2]; N];
    let mut i = 0;
    while i < k8 {
        // SAFETY: i + 8 <= k8 <= every slice's length.
        let w = unsafe {
            [
                [vld1q_f32(w0.as_ptr().add(i)), vld1q_f32(w0.as_ptr().add(i + 4))],
                [vld1q_f32(w1.as_ptr().add(i)), vld1q_f32(w1.as_ptr().add(i + 4))],
            ]
        };
        for t in 0..N {
            // SAFETY: as above.
            let xv = unsafe { [vld1q_f32(x[t].as_ptr().add(i)), vld1q_f32(x[t].as_ptr().add(i + 4))] };
            for r in 0..2 {
                for h in 0..2 {
                    acc[t][r][h] = vfmaq_f32(acc[t][r][h], xv[h], w[r][h]);
                }
            }
        }
        i += 8;
    }
    let mut out = [[0f32; 2]; N];
    for t in 0..N {
        for (r, wr) in [w0, w1].into_iter().enumerate() {
            let s = vaddq_f32(acc[t][r][0], acc[t][r][1]);
            let total =
                (vgetq_lane_f32::<0>(s) + vgetq_lane_f32::<1>(s)) + (vgetq_lane_f32::<2>(s) + vgetq_lane_f32::<3>(s));
            let mut tail = 0f32;
            for j in k8..k {
                tail += x[t][j] * wr[j];
            }
            out[t][r] = total + tail;
        }
    }
    out
}
