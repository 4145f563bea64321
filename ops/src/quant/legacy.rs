//! The 32-element "legacy" types: Q4_0, Q4_1, Q5_0, Q5_1.
//!
//! Quantizers are ggml's `quantize_row_*_ref` (what `llama-quantize` runs without an importance
//! matrix), written in the same f32 operation order so the bytes are llama.cpp's. Dequantizers
//! are ggml's `dequantize_row_*` (and the `gguf` Python package's): the specification.
//!
//! | type | block (32 values)                         | value `i`                     |
//! |------|-------------------------------------------|-------------------------------|
//! | Q4_0 | `d: f16`, `qs: [u8; 16]`         (18 B)   | `d · (q_i − 8)`               |
//! | Q4_1 | `d, m: f16`, `qs: [u8; 16]`      (20 B)   | `d · q_i + m`                 |
//! | Q5_0 | `d: f16`, `qh: [u8; 4]`, `qs`    (22 B)   | `d · (q_i − 16)`, 5-bit `q_i` |
//! | Q5_1 | `d, m: f16`, `qh: [u8; 4]`, `qs` (24 B)   | `d · q_i + m`, 5-bit `q_i`    |
//!
//! The low nibble of `qs[j]` is value `j`, the high nibble value `j + 16`; bit `i` of the
//! little-endian `qh` word is bit 4 of value `i`.

use half::f16;

/// Values per block of every legacy type.
pub const QK4_0: usize = 32;
const HALF: usize = QK4_0 / 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; HALF],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; HALF],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; HALF],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; HALF],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18 && std::mem::align_of::<BlockQ4_0>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20 && std::mem::align_of::<BlockQ4_1>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22 && std::mem::align_of::<BlockQ5_0>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24 && std::mem::align_of::<BlockQ5_1>() == 2);

/// The value of largest magnitude (the first one, on ties), as ggml's symmetric types pick it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// ggml's `min`/`max` scan starting from ±FLT_MAX.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// The 5th bits of 32 quants as the little-endian `qh` word.
fn high_bits(q: &[u8; QK4_0]) -> [u8; 4] {
    let mut qh = 0u32;
    for (i, &v) in q.iter().enumerate() {
        qh |= u32::from((v & 0x10) >> 4) << i;
    }
    qh.to_le_bytes()
}

fn nibbles(q: &[u8; QK4_0]) -> [u8; HALF] {
    std::array::from_fn(|j| (q[j] & 0x0f) | ((q[j + HALF] & 0x0f) << 4))
}

/// Quant `i` (0..32) of a block's nibbles plus its 5th bit from `qh`.
#[inline]
fn quant(qs: &[u8; HALF], qh: u32, i: usize) -> u8 {
    let nib = if i < HALF { qs[i] & 0x0f } else { qs[i - HALF] >> 4 };
    nib | ((((qh >> i) & 1) as u8) << 4)
}

impl BlockQ4_0 {
    /// ggml's `quantize_row_q4_0_ref` on one block.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let d = signed_absmax(x) / -8.0;
        let id = inverse(d);
        // `(int8_t)(x·id + 8.5)`: truncation toward zero, then at most 15.
        let q: [u8; QK4_0] = std::array::from_fn(|i| ((x[i] * id + 8.5) as i8).min(15) as u8);
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs: nibbles(&q),
        }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for j in 0..HALF {
            out[j] = ((self.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            out[j + HALF] = ((self.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    /// ggml's `quantize_row_q4_1_ref` on one block.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let q: [u8; QK4_0] = std::array::from_fn(|i| (((x[i] - min) * id + 0.5) as i8).min(15) as u8);
        BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs: nibbles(&q),
        }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for j in 0..HALF {
            out[j] = (self.qs[j] & 0x0f) as f32 * d + m;
            out[j + HALF] = (self.qs[j] >> 4) as f32 * d + m;
        }
    }
}

impl BlockQ5_0 {
    /// ggml's `quantize_row_q5_0_ref` on one block.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let d = signed_absmax(x) / -16.0;
        let id = inverse(d);
        let q: [u8; QK4_0] = std::array::from_fn(|i| ((x[i] * id + 16.5) as i8).min(31) as u8);
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh: high_bits(&q),
            qs: nibbles(&q),
        }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (i, o) in out[..QK4_0].iter_mut().enumerate() {
            *o = (quant(&self.qs, qh, i) as i32 - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// ggml's `quantize_row_q5_1_ref` on one block.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        // `(uint8_t)(x + 0.5)`, no clamp in ggml (the largest value lands on 31).
        let q: [u8; QK4_0] = std::array::from_fn(|i| ((x[i] - min) * id + 0.5) as u8);
        BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh: high_bits(&q),
            qs: nibbles(&q),
        }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        let qh = u32::from_le_bytes(self.qh);
        for (i, o) in out[..QK4_0].iter_mut().enumerate() {
            *o = quant(&self.qs, qh, i) as f32 * d + m;
        }
    }
}

impl BlockQ4_1 {
    /// The 32 quants (0..16) in value order: value `i` is `d · q_i + m`.
    pub fn quants(&self) -> [u8; QK4_0] {
        std::array::from_fn(|i| {
            if i < HALF {
                self.qs[i] & 0x0f
            } else {
                self.qs[i - HALF] >> 4
            }
        })
    }
}

impl BlockQ5_1 {
    /// The 32 quants (0..32) in value order: value `i` is `d · q_i + m`.
    pub fn quants(&self) -> [u8; QK4_0] {
        let qh = u32::from_le_bytes(self.qh);
        std::array::from_fn(|i| quant(&self.qs, qh, i))
    }
}

/// The symmetric types as (scale, 32 signed quants), exactly: `value_i = d · q_i`. What the
/// symmetric panels of the integer kernels take, so Q4_0 and Q5_0 run on them without loss.
pub trait SymmetricBlock {
    fn scale_and_quants(&self) -> (f16, [i8; QK4_0]);
}

impl SymmetricBlock for BlockQ4_0 {
    fn scale_and_quants(&self) -> (f16, [i8; QK4_0]) {
        let q = std::array::from_fn(|i| {
            let nib = if i < HALF {
                self.qs[i] & 0x0f
            } else {
                self.qs[i - HALF] >> 4
            };
            nib as i8 - 8
        });
        (self.d, q)
    }
}

impl SymmetricBlock for BlockQ5_0 {
    fn scale_and_quants(&self) -> (f16, [i8; QK4_0]) {
        let qh = u32::from_le_bytes(self.qh);
        (self.d, std::array::from_fn(|i| quant(&self.qs, qh, i) as i8 - 16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u32) -> [f32; QK4_0] {
        let mut s = seed;
        std::array::from_fn(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1 << 24) as f32 - 0.5) * 0.2
        })
    }

    fn max_err(x: &[f32; QK4_0], y: &[f32; QK4_0]) -> f32 {
        x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn round_trips_stay_within_one_step() {
        for seed in 0..50 {
            let x = sample(seed);
            let (min, max) = min_max(&x);
            let amax = signed_absmax(&x).abs();
            let mut y = [0f32; QK4_0];
            BlockQ4_0::quantize(&x).dequantize(&mut y);
            assert!(max_err(&x, &y) <= amax / 8.0 * 1.01, "q4_0 {seed}");
            BlockQ5_0::quantize(&x).dequantize(&mut y);
            assert!(max_err(&x, &y) <= amax / 16.0 * 1.01, "q5_0 {seed}");
            BlockQ4_1::quantize(&x).dequantize(&mut y);
            assert!(max_err(&x, &y) <= (max - min) / 15.0 * 0.51 + 1e-3, "q4_1 {seed}");
            BlockQ5_1::quantize(&x).dequantize(&mut y);
            assert!(max_err(&x, &y) <= (max - min) / 31.0 * 0.51 + 1e-3, "q5_1 {seed}");
        }
    }

    #[test]
    fn offset_quants_reproduce_the_dequantization() {
        for seed in 0..20 {
            let x = sample(seed);
            let mut y = [0f32; QK4_0];
            let b = BlockQ4_1::quantize(&x);
            b.dequantize(&mut y);
            for (i, &q) in b.quants().iter().enumerate() {
                assert!(q < 16);
                assert_eq!((q as f32 * b.d.to_f32() + b.m.to_f32()).to_bits(), y[i].to_bits());
            }
            let b = BlockQ5_1::quantize(&x);
            b.dequantize(&mut y);
            for (i, &q) in b.quants().iter().enumerate() {
                assert!(q < 32);
                assert_eq!((q as f32 * b.d.to_f32() + b.m.to_f32()).to_bits(), y[i].to_bits());
            }
        }
    }

    #[test]
    fn symmetric_quants_reproduce_the_dequantization() {
        for seed in 0..20 {
            let x = sample(seed);
            let mut y = [0f32; QK4_0];
            let b = BlockQ5_0::quantize(&x);
            b.dequantize(&mut y);
            let (d, q) = b.scale_and_quants();
            for i in 0..QK4_0 {
                assert_eq!((q[i] as f32 * d.to_f32()).to_bits(), y[i].to_bits());
            }
            let b = BlockQ4_0::quantize(&x);
            b.dequantize(&mut y);
            let (d, q) = b.scale_and_quants();
            for i in 0..QK4_0 {
                assert_eq!((q[i] as f32 * d.to_f32()).to_bits(), y[i].to_bits());
            }
        }
    }

    #[test]
    fn the_extreme_value_maps_to_the_end_of_the_range() {
        let mut x = [0.01f32; QK4_0];
        x[3] = -1.0;
        let b = BlockQ4_0::quantize(&x);
        // d = max / -8 = 0.125: −1.0 → q = 0, i.e. −8 · 0.125.
        assert_eq!(b.d.to_f32(), 0.125);
        assert_eq!(b.qs[3] & 0x0f, 0);
        let zero = BlockQ5_1::quantize(&[0.0; QK4_0]);
        let mut y = [1f32; QK4_0];
        zero.dequantize(&mut y);
        assert_eq!(y, [0.0; QK4_0]);
    }
}
