//! Helpers the kernel tests share: the SIMD tiers this CPU runs, tolerances, random weights of
//! every type.

#![allow(dead_code)] // each test file uses its own part

use gg_backends::{Backend, WeightView};
use gg_ops::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, DType};
use half::{bf16, f16};

/// The SIMD tiers this CPU runs (the others are named as skipped).
pub fn simd_backends() -> Vec<Backend> {
    let all: Vec<Backend> = Backend::all()
        .iter()
        .copied()
        .filter(|&b| b != Backend::Scalar)
        .collect();
    for b in &all {
        if !b.is_available() {
            eprintln!("skipping the {b} backend: this CPU does not support it");
        }
    }
    all.into_iter().filter(|b| b.is_available()).collect()
}

pub fn assert_close(want: &[f32], got: &[f32], what: &str) {
    assert_close_at(want, got, what, 1e-3);
}

/// [`assert_close`] with the error judged against at least `floor`: a dot product of `k` O(1)
/// terms has summation errors on the scale of its terms (about √k), not of its value, which
/// cancellation can make small — the tiers sum in another order (and with FMA).
pub fn assert_close_at(want: &[f32], got: &[f32], what: &str, floor: f32) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (a, b)) in want.iter().zip(got).enumerate() {
        assert!(
            (a - b).abs() <= 2e-5 * scale,
            "{what}: element {i}: scalar {a}, simd {b}"
        );
    }
}

/// A random weight of one type, kept as its bytes (in u64 words, so views are aligned).
pub struct W {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    words: Vec<u64>,
}

/// Every weight type with kernels.
pub const KINDS: [DType; 11] = [
    DType::Q8_0,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
];

/// Values quantized block by block with `quantize`, as stored.
pub fn blocks_of<B: bytemuck::Pod, const N: usize>(vals: &[f32], quantize: fn(&[f32; N]) -> B) -> Vec<u8> {
    vals.chunks_exact(N)
        .flat_map(|c| bytemuck::bytes_of(&quantize(c.try_into().unwrap())).to_vec())
        .collect()
}

impl W {
    pub fn new(dtype: DType, rows: usize, cols: usize, vals: &[f32]) -> W {
        let bytes: Vec<u8> = match dtype {
            DType::Q8_0 => vals
                .chunks_exact(32)
                .flat_map(|c| BlockQ8_0::quantize(c.try_into().unwrap()).to_bytes())
                .collect(),
            DType::F16 => vals.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            DType::BF16 => vals.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
            DType::Q4_0 => blocks_of(vals, BlockQ4_0::quantize),
            DType::Q4_1 => blocks_of(vals, BlockQ4_1::quantize),
            DType::Q5_0 => blocks_of(vals, BlockQ5_0::quantize),
            DType::Q5_1 => blocks_of(vals, BlockQ5_1::quantize),
            DType::Q4K => blocks_of(vals, BlockQ4K::quantize),
            DType::Q5K => blocks_of(vals, BlockQ5K::quantize),
            DType::Q6K => blocks_of(vals, BlockQ6K::quantize),
            _ => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
        let len = bytes.len();
        words.truncate(len.div_ceil(8));
        W {
            dtype,
            rows,
            cols,
            words,
        }
    }
    pub fn view(&self) -> WeightView<'_> {
        let bytes: &[u8] = bytemuck::cast_slice(&self.words);
        let len = self.dtype.bytes_for(self.rows * self.cols).unwrap();
        WeightView::new(self.dtype, self.rows, self.cols, &bytes[..len]).unwrap()
    }
}
