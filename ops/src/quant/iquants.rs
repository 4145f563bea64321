//! The 4-bit non-linear types, IQ4_NL and IQ4_XS: each quant indexes a fixed table of 16 int8
//! values spread more densely near zero ([`KVALUES_IQ4NL`]), times a scale.
//!
//! - IQ4_NL: blocks of 32 values as an f16 scale `d` and 16 bytes of nibbles (18 bytes);
//!   value `j` is `d · K[nibble_j]` (nibbles: low halves are values 0–15, high 16–31).
//! - IQ4_XS: super-blocks of 256 values (136 bytes): an f16 `d`, a 6-bit scale `ls` per
//!   32 values (low 4 bits in `scales_l`, high 2 in `scales_h`), and the nibbles as IQ4_NL
//!   lays them out per 32; value = `(d · (ls − 32)) · K[nibble]`.
//!
//! The dequantizers are llama.cpp's `dequantize_row_iq4_nl`/`_xs` operation for operation. The
//! quantizers are its `quantize_iq4_nl`/`quantize_iq4_xs` without an importance matrix (the
//! path `llama-quantize` takes), ported statement for statement.

use half::f16;

use super::nearest_int;
use super::QK_K;

/// Values per IQ4_NL block.
pub const QK4_NL: usize = 32;

/// The 16 values a 4-bit non-linear quant indexes.
pub const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIq4Nl {
    pub d: f16,
    pub qs: [u8; QK4_NL / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIq4Xs {
    pub d: f16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(std::mem::size_of::<BlockIq4Nl>() == 18 && std::mem::align_of::<BlockIq4Nl>() == 2);
const _: () = assert!(std::mem::size_of::<BlockIq4Xs>() == 136 && std::mem::align_of::<BlockIq4Xs>() == 2);

/// 32 values' table entries from 16 bytes of nibbles (low nibbles first, then high ones).
fn table_values(qs: &[u8]) -> [i8; 32] {
    std::array::from_fn(|j| {
        let byte = qs[j % 16];
        let nibble = if j < 16 { byte & 0xf } else { byte >> 4 };
        KVALUES_IQ4NL[nibble as usize]
    })
}

impl BlockIq4Nl {
    /// The scale and each value's table entry: value `j` = `d · q_j`.
    pub fn scale_and_values(&self) -> (f16, [i8; QK4_NL]) {
        (self.d, table_values(&self.qs))
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, q) in out.iter_mut().zip(table_values(&self.qs)) {
            *o = d * f32::from(q);
        }
    }

    /// llama.cpp's `quantize_iq4_nl` on one block (no importance matrix).
    pub fn quantize(x: &[f32; QK4_NL]) -> BlockIq4Nl {
        let mut block = BlockIq4Nl {
            d: f16::ZERO,
            qs: [0; QK4_NL / 2],
        };
        let mut scales_h = [0u16; 1];
        quantize_nl(x, &mut block.d, &mut block.qs, &mut scales_h, &mut [], 7);
        block
    }
}

impl BlockIq4Xs {
    /// The 6-bit scale of sub-block `ib` (0..8), as stored (`ls`; the scale is `d · (ls − 32)`).
    pub fn sub_scale(&self, ib: usize) -> i32 {
        let low = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf;
        let high = (self.scales_h >> (2 * ib)) & 3;
        i32::from(low) | (i32::from(high) << 4)
    }

    /// Sub-block `ib`'s scale (`d · (ls − 32)`, exact in f32: an f16 times a 6-bit integer)
    /// and its values' table entries.
    pub fn sub_block(&self, ib: usize) -> (f32, [i8; 32]) {
        let dl = self.d.to_f32() * (self.sub_scale(ib) - 32) as f32;
        (dl, table_values(&self.qs[16 * ib..16 * ib + 16]))
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        for (ib, chunk) in out.chunks_exact_mut(32).enumerate() {
            let (dl, q) = self.sub_block(ib);
            for (o, q) in chunk.iter_mut().zip(q) {
                *o = dl * f32::from(q);
            }
        }
    }

    /// llama.cpp's `quantize_iq4_xs` on one super-block (no importance matrix).
    pub fn quantize(x: &[f32; QK_K]) -> BlockIq4Xs {
        let mut block = BlockIq4Xs {
            d: f16::ZERO,
            scales_h: 0,
            scales_l: [0; QK_K / 64],
            qs: [0; QK_K / 2],
        };
        let mut scales_h = [0u16; 1];
        quantize_nl(x, &mut block.d, &mut block.qs, &mut scales_h, &mut block.scales_l, 7);
        block.scales_h = scales_h[0];
        block
    }
}

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below it quantizes to zeros.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `best_index_int8`: the index of the table value nearest `x` (the upper on ties).
fn best_index_int8(values: &[i8; 16], x: f32) -> usize {
    if x <= f32::from(values[0]) {
        return 0;
    }
    if x >= f32::from(values[15]) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(values[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(values[mu - 1]) < f32::from(values[mu]) - x {
        mu - 1
    } else {
        mu
    }
}

/// ggml's `quantize_row_iq4_nl_impl` for blocks of 32 within a super-block of `x.len()` (32:
/// IQ4_NL, one scale in `dh`; 256: IQ4_XS, `dh` and 6-bit sub-scales), without importance
/// weights: each block's scale is searched over `2·ntry + 1` candidates, then (IQ4_XS) the
/// sub-scales are quantized against the largest and the quants chosen again.
fn quantize_nl(x: &[f32], dh: &mut f16, q4: &mut [u8], scales_h: &mut [u16], scales_l: &mut [u8], ntry: i32) {
    let values = &KVALUES_IQ4NL;
    let v0 = f32::from(values[0]);
    let n = x.len();
    let blocks = n / 32;
    let mut scales = [0f32; QK_K / 32];
    let mut l = [0u8; QK_K];
    q4.fill(0);
    *dh = f16::ZERO;
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    for ib in 0..blocks {
        let xb = &x[32 * ib..32 * ib + 32];
        let lb = &mut l[32 * ib..32 * ib + 32];
        let weight: [f32; 32] = std::array::from_fn(|j| xb[j] * xb[j]);
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut d = if ntry > 0 { -max / v0 } else { max / v0 };
        let mut id = 1.0 / d;
        let (mut sumqx, mut sumq2) = (0f32, 0f32);
        for j in 0..32 {
            let al = id * xb[j];
            let k = best_index_int8(values, al);
            lb[j] = k as u8;
            let q = f32::from(values[k]);
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -ntry..=ntry {
            id = (itry as f32 + v0) / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..32 {
                let al = id * xb[j];
                let q = f32::from(values[best_index_int8(values, al)]);
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }
    if blocks > 1 {
        scales_h.fill(0);
        let d = -max_scale / 32.0;
        *dh = f16::from_f32(d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for ib in 0..blocks {
            let li = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * li as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for j in 0..32 {
                l[32 * ib + j] = best_index_int8(values, idl * x[32 * ib + j]) as u8;
            }
            let li = (li + 32) as u8;
            let (low, high) = (li & 0xf, li >> 4);
            if ib % 2 == 0 {
                scales_l[ib / 2] = low;
            } else {
                scales_l[ib / 2] |= low << 4;
            }
            scales_h[ib / 8] |= u16::from(high) << (2 * (ib % 8));
        }
    } else {
        *dh = f16::from_f32(scales[0]);
        if ntry > 0 {
            let id = if scales[0] != 0.0 { 1.0 / scales[0] } else { 0.0 };
            for j in 0..n {
                l[j] = best_index_int8(values, id * x[j]) as u8;
            }
        }
    }
    for i in 0..n / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;

    #[test]
    fn nearest_table_index_takes_the_upper_on_ties() {
        let v = &KVALUES_IQ4NL;
        assert_eq!(best_index_int8(v, -200.0), 0);
        assert_eq!(best_index_int8(v, 200.0), 15);
        assert_eq!(best_index_int8(v, 1.0), 8);
        assert_eq!(best_index_int8(v, -4.5), 8); // halfway between −10 and 1: the upper
        assert_eq!(best_index_int8(v, -4.6), 7);
    }

    #[test]
    fn quantized_blocks_dequantize_close_to_their_values() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..50 {
            let x: [f32; QK_K] = std::array::from_fn(|_| rng.unit() * 0.05);
            let xs = BlockIq4Xs::quantize(&x);
            let mut y = [0f32; QK_K];
            xs.dequantize(&mut y);
            let (err, norm): (f32, f32) = x
                .iter()
                .zip(&y)
                .fold((0.0, 0.0), |(e, n), (a, b)| (e + (a - b).powi(2), n + a * a));
            assert!(err < 0.02 * norm, "IQ4_XS relative error {}", err / norm);
            let nl = BlockIq4Nl::quantize(x[..32].try_into().unwrap());
            let mut y = [0f32; 32];
            nl.dequantize(&mut y);
            let (err, norm): (f32, f32) = x[..32]
                .iter()
                .zip(&y)
                .fold((0.0, 0.0), |(e, n), (a, b)| (e + (a - b).powi(2), n + a * a));
            assert!(err < 0.02 * norm, "IQ4_NL relative error {}", err / norm);
        }
        let zeros = BlockIq4Xs::quantize(&[0.0; QK_K]);
        let mut y = [1f32; QK_K];
        zeros.dequantize(&mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }
}
