//! The AVX2 tier's exact matmul parts for the shared drivers ([`crate::tiled`]): row decoders
//! (Q8_0 `d · q`, F16 through F16C, BF16 widened) and 4-token × 2-row FMA register tiles, 8
//! lanes summed in the scalar kernel's order.

use std::arch::x86_64::*;

use gg_ops::{BlockQ8_0, DType, WeightView, QK8_0};
use half::f16;

use super::simd::{bf16_to_f32, dequant_q8_0, dot, f16_to_f32, geglu, hsum, prefetch};
use super::token::Avx2;
use crate::cpu::CpuToken;
use crate::kernels::Activations;
use crate::tiled::{Decoder, RowDecoder, Tiles};
use crate::wtypes::WeightType;

/// Q8_0 blocks: `d · q` in 8-lane vectors.
pub struct Q8Rows;

impl RowDecoder for Q8Rows {
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let _ = Avx2::get();
        let per_row = w.cols() / QK8_0;
        let first = j * per_row + k0 / QK8_0;
        let blocks = &w.cast::<BlockQ8_0>()[first..first + out.len() / QK8_0];
        // SAFETY: the token proves AVX2, FMA and F16C.
        unsafe { dequant_q8_0(blocks, out) }
    }
}

/// F16 halves converted with F16C.
pub struct F16Rows;

impl RowDecoder for F16Rows {
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let _ = Avx2::get();
        let start = j * w.cols() + k0;
        let halves = &w.cast::<f16>()[start..start + out.len()];
        // SAFETY: the token proves AVX2, FMA and F16C.
        unsafe { f16_to_f32(halves, out) }
    }
}

/// BF16 halves widened to f32 (a 16-bit shift: exact).
pub struct Bf16Rows;

impl RowDecoder for Bf16Rows {
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let _ = Avx2::get();
        let start = j * w.cols() + k0;
        let halves = &w.cast::<half::bf16>()[start..start + out.len()];
        // SAFETY: the token proves AVX2.
        unsafe { bf16_to_f32(halves, out) }
    }
}

/// `[x_t · w_r]` for `N` (1 ..= 4) tokens and two weight rows: `2N` independent FMA chains,
/// each summed as [`dot`] sums one (8 lanes along `k`, then the lanes, then the tail).
///
/// # Safety
/// AVX2 and FMA must be available; every slice has the same length.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
fn tile_nx2<const N: usize>(x: [&[f32]; N], w0: &[f32], w1: &[f32]) -> [[f32; 2]; N] {
    let k = w0.len();
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let mut i = 0;
    while i < k8 {
        // SAFETY: i + 8 <= k8 <= every slice's length.
        let (a, b) = unsafe { (_mm256_loadu_ps(w0.as_ptr().add(i)), _mm256_loadu_ps(w1.as_ptr().add(i))) };
        for t in 0..N {
            // SAFETY: as above.
            let xv = unsafe { _mm256_loadu_ps(x[t].as_ptr().add(i)) };
            acc[t][0] = _mm256_fmadd_ps(xv, a, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, b, acc[t][1]);
        }
        i += 8;
    }
    let mut out = [[0f32; 2]; N];
    for t in 0..N {
        let (mut t0, mut t1) = (0f32, 0f32);
        for j in k8..k {
            t0 += x[t][j] * w0[j];
            t1 += x[t][j] * w1[j];
        }
        out[t] = [hsum(acc[t][0]) + t0, hsum(acc[t][1]) + t1];
    }
    out
}

/// The tier's row decoders: Q8_0, F16 and BF16 in vectors, the other types by their
/// specification (the AVX-512 tier decodes as this one).
pub fn decoder<W: WeightType>() -> Decoder {
    match W::DTYPE {
        DType::Q8_0 => Decoder::of::<Q8Rows>(),
        DType::F16 => Decoder::of::<F16Rows>(),
        DType::BF16 => Decoder::of::<Bf16Rows>(),
        _ => Decoder::spec::<W>(),
    }
}

/// 8-lane FMA tiles of 4 tokens × 2 rows.
pub struct Avx2Tiles;

impl Tiles for Avx2Tiles {
    type Cpu = Avx2;
    const ROWS: usize = 2;
    fn decoder<W: WeightType>() -> Decoder {
        decoder::<W>()
    }
    fn dots(
        _: Avx2,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        mut put: impl FnMut(usize, usize, f32),
    ) {
        let b = rows.get(1).copied();
        // SAFETY: the token proves AVX2 and FMA.
        unsafe {
            tile_dots(x, t0, t1, rows[0], b, |t, p, q| {
                put(t, 0, p);
                if b.is_some() {
                    put(t, 1, q);
                }
            })
        }
    }
    fn geglu(_: Avx2, g: &[f32], u: &[f32], h: &mut [f32]) {
        // SAFETY: the token proves AVX2 and FMA.
        unsafe { geglu(g, u, h) }
    }
    fn prefetch(bytes: &[u8]) {
        prefetch(bytes)
    }
}

/// Dots of the token tile `t0..t1` with weight rows `a` and `b` (when given).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
fn tile_dots(
    x: &Activations<'_>,
    t0: usize,
    t1: usize,
    a: &[f32],
    b: Option<&[f32]>,
    mut put: impl FnMut(usize, f32, f32),
) {
    let mut t = t0;
    if let Some(b) = b {
        while t + 4 <= t1 {
            let d = tile_nx2([x.row(t), x.row(t + 1), x.row(t + 2), x.row(t + 3)], a, b);
            for (i, [p, q]) in d.into_iter().enumerate() {
                put(t + i, p, q);
            }
            t += 4;
        }
        // The last 1-3 tokens in one tile too: one `dot` at a time would run a single FMA
        // chain, bound by its latency (a short query is mostly such tails).
        match t1 - t {
            3 => {
                for (i, [p, q]) in tile_nx2([x.row(t), x.row(t + 1), x.row(t + 2)], a, b)
                    .into_iter()
                    .enumerate()
                {
                    put(t + i, p, q);
                }
            }
            2 => {
                for (i, [p, q]) in tile_nx2([x.row(t), x.row(t + 1)], a, b).into_iter().enumerate() {
                    put(t + i, p, q);
                }
            }
            1 => {
                let [[p, q]] = tile_nx2([x.row(t)], a, b);
                put(t, p, q);
            }
            _ => {}
        }
        return;
    }
    for t in t..t1 {
        let xt = x.row(t);
        put(t, dot(xt, a), b.map_or(0.0, |b| dot(xt, b)));
    }
}
