//! Block formats of the quantized weight types, with their reference quantizers (llama.cpp's
//! bytes, bit for bit) and dequantizers (the specification every kernel is tested against).
//! Q8_0 here; the other 32-element types in [`legacy`], the 256-element K-quants in [`kquants`]
//! (Q4_K … Q6_K) and [`lowbit`] (Q2_K, Q3_K), the non-linear IQ4 types in [`iquants`], the grid
//! type IQ3_S in [`iq3`].
//!
//! The Q8_0 block format and its reference (scalar) quantizer and dequantizer.
//!
//! A block holds 32 consecutive values of a row as one f16 scale `d` and 32 signed bytes `q`;
//! the value `i` is `d * q[i]`. The quantizer reproduces llama.cpp's converter bit for bit
//! (`gguf-py`'s `Q8_0.quantize_blocks`): in f32, `d = max|x| / 127`, `id = 1 / d` (0 when
//! `d == 0`), `q = sign(x*id) * floor(|x*id| + 0.5)`, then `d` is stored as f16.

use half::f16;

pub mod iq3;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod lowbit;

pub use iq3::{BlockIq3S, IQ3S_GRID};
pub use iquants::{BlockIq4Nl, BlockIq4Xs, KVALUES_IQ4NL, QK4_NL};
pub use kquants::{BlockQ4K, BlockQ5K, BlockQ6K, QK_K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, QK4_0};
pub use lowbit::{BlockQ2K, BlockQ3K};

/// ggml's `nearest_int`: round to nearest, ties to even, by adding 1.5 · 2²³ and reading the
/// mantissa (valid for |x| ≤ 2²² − 1, as in ggml).
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Values per Q8_0 block.
pub const QK8_0: usize = 32;

/// One Q8_0 block: 2-byte f16 scale followed by 32 int8 quants (34 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::align_of::<BlockQ8_0>() == 2);

impl BlockQ8_0 {
    /// Quantize 32 values.
    pub fn quantize(x: &[f32; QK8_0]) -> BlockQ8_0 {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            let s = v * id;
            // numpy's `np.sign(s) * np.floor(np.abs(s) + 0.5)` in f32: half away from zero.
            let r = (s.abs() + 0.5).floor();
            *q = (if s < 0.0 { -r } else { r }) as i8;
        }
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }

    /// Dequantize into 32 values.
    pub fn dequantize(&self, out: &mut [f32; QK8_0]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * q as f32;
        }
    }

    /// The block's 34 bytes as stored in GGUF (little-endian scale, then quants).
    pub fn to_bytes(&self) -> [u8; 34] {
        let mut b = [0u8; 34];
        b[..2].copy_from_slice(&self.d.to_bits().to_le_bytes());
        for (o, &q) in b[2..].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
        b
    }
}

/// Quantize a row whose length is a multiple of [`QK8_0`].
///
/// # Panics
/// If `x.len()` is not a multiple of 32 or `out` has the wrong number of blocks.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    assert_eq!(
        x.len() % QK8_0,
        0,
        "row length {} is not a multiple of {QK8_0}",
        x.len()
    );
    assert_eq!(out.len(), x.len() / QK8_0);
    for (chunk, block) in x.chunks_exact(QK8_0).zip(out) {
        *block = BlockQ8_0::quantize(chunk.try_into().expect("chunk of 32"));
    }
}

/// Dequantize a row of blocks into `out` (`out.len() == blocks.len() * 32`).
pub fn dequantize_row_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * QK8_0);
    for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        block.dequantize(chunk.try_into().expect("chunk of 32"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_close_and_rounds_half_away() {
        let mut x = [0f32; 32];
        for (i, v) in x.iter_mut().enumerate() {
            *v = (i as f32 - 15.5) * 0.37;
        }
        let b = BlockQ8_0::quantize(&x);
        let mut y = [0f32; 32];
        b.dequantize(&mut y);
        let amax = 15.5 * 0.37;
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= amax / 127.0, "{a} vs {b}");
        }
        assert_eq!(b.qs[0], -127);
        assert_eq!(b.qs[31], 127);
        let zero = BlockQ8_0::quantize(&[0.0; 32]);
        assert_eq!(zero.qs, [0; 32]);
        assert_eq!(zero.d.to_f32(), 0.0);
    }
}
