//! Helpers the kernel tests share: the SIMD tiers this CPU runs, tolerances, random weights of
//! every type.

#![allow(dead_code)] // each test file uses its own part

use gg_backends::{Backend, WeightView};
use gg_ops::{
    BlockIq3S, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0, DType,
};
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

/// Every weight type with kernels (the one list, `wtypes::SPECS`).
pub fn kinds() -> Vec<DType> {
    gg_backends::wtypes::SPECS.iter().map(|s| s.dtype).collect()
}

/// The types the integer precisions take, with their panel form: every one with a form (fast),
/// or with an 8-bit form (`eight_bit`: int8).
pub fn panel_types(eight_bit: bool) -> Vec<(DType, gg_backends::wtypes::PanelForm)> {
    use gg_backends::wtypes::PanelForm;
    gg_backends::wtypes::SPECS
        .iter()
        .filter_map(|s| Some((s.dtype, s.panel_form?)))
        .filter(|&(_, f)| !eight_bit || f != PanelForm::Wide)
        .collect()
}

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
            DType::Q2K => blocks_of(vals, BlockQ2K::quantize),
            DType::Q3K => blocks_of(vals, BlockQ3K::quantize),
            DType::Q4K => blocks_of(vals, BlockQ4K::quantize),
            DType::Q5K => blocks_of(vals, BlockQ5K::quantize),
            DType::Q6K => blocks_of(vals, BlockQ6K::quantize),
            DType::IQ4NL => blocks_of(vals, BlockIq4Nl::quantize),
            DType::IQ4XS => blocks_of(vals, BlockIq4Xs::quantize),
            DType::IQ3S => blocks_of(vals, BlockIq3S::quantize),
            DType::F32 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
            other => panic!("no test quantizer for {other}: add one to W::new"),
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

/// `kern`'s integer matmuls (fast or int8) against the scalar specification's `spec` for weights
/// of `dtype`: random weights and activations read with a row stride, plain and GeGLU, 1 and 2
/// threads, tails of rows, columns and k (Q8_0, the hot type, over the most shapes). Plain
/// outputs must be bit-identical; GeGLU ones within the tiers' GELU rounding.
pub fn integer_matmuls_match(
    spec: &gg_backends::fast::FastKernels,
    (tier, kern): (&str, &gg_backends::fast::FastKernels),
    dtype: DType,
    rng: &mut gg_ops::testing::XorShift,
    team: &gg_backends::Team,
) {
    use gg_backends::{Activations, Par};
    let kquant = dtype.block_len() == 256;
    let (ks, rows_set, ns): (&[usize], &[usize], &[usize]) = match dtype {
        DType::Q8_0 => (&[32, 96, 768], &[1, 3, 8, 9, 16, 17, 40, 70], &[1, 5, 16, 17, 40, 300]),
        _ if kquant => (&[256, 768], &[1, 5, 17, 70], &[1, 17, 40]),
        _ => (&[32, 96, 768], &[1, 5, 17, 70], &[1, 17, 40]),
    };
    for &k in ks {
        for &rows in rows_set {
            for &n in ns {
                for geglu in [false, true] {
                    let groups = if geglu { 2 } else { 1 };
                    let w = W::new(dtype, groups * n, k, &rng.vec(groups * n * k));
                    let (ps, pk) = (
                        (spec.pack)(w.view(), groups).unwrap(),
                        (kern.pack)(w.view(), groups).unwrap(),
                    );
                    let stride = k + 5;
                    let xs = rng.vec(rows * stride);
                    let x = Activations {
                        data: &xs[3..],
                        rows,
                        k,
                        stride,
                    };
                    let f = |kk: &gg_backends::fast::FastKernels, p, par| {
                        let mut out = vec![f32::NAN; rows * n];
                        if geglu {
                            (kk.matmul_geglu)(x, p, &mut out, n, par);
                        } else {
                            (kk.matmul)(x, p, &mut out, n, par);
                        }
                        out
                    };
                    let want = f(spec, &ps, Par::SERIAL);
                    for par in [Par::SERIAL, Par { threads: 2 }] {
                        let got = team.install(|| f(kern, &pk, par));
                        let what = format!("{tier} {dtype} matmul (geglu {geglu}) rows {rows} k {k} n {n}");
                        if geglu {
                            // The tiers' GELU differs from the scalar one by rounding, which
                            // `1 + tanh` (near 0 for g ≪ 0) makes large relative to a small
                            // output: judged against `|g · u|`, the spec's gate and up values.
                            let gu = gate_times_up(spec, &w, x, n);
                            assert_geglu_close(&want, &got, &gu, &what);
                        } else {
                            let same = want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{what}: not bit-identical to the scalar spec");
                        }
                    }
                }
            }
        }
    }
}

/// `|g · u|` per GeGLU output: the spec's plain matmuls of the gate rows and the up rows.
fn gate_times_up(spec: &gg_backends::fast::FastKernels, w: &W, x: gg_backends::Activations<'_>, n: usize) -> Vec<f32> {
    let half = |g: usize| {
        let p = (spec.pack)(w.view().rows_range(g * n, n), 1).unwrap();
        let mut out = vec![0f32; x.rows * n];
        (spec.matmul)(x, &p, &mut out, n, gg_backends::Par::SERIAL);
        out
    };
    let (g, u) = (half(0), half(1));
    g.iter().zip(&u).map(|(g, u)| (g * u).abs()).collect()
}

/// GeGLU outputs within `2e-5 · max(|g · u|, 1e-3)` of the spec's (the GELU approximations'
/// rounding scales with the product, not with the output).
fn assert_geglu_close(want: &[f32], got: &[f32], gu: &[f32], what: &str) {
    for (i, ((a, b), gu)) in want.iter().zip(got).zip(gu).enumerate() {
        assert!(
            (a - b).abs() <= 2e-5 * gu.max(a.abs()).max(1e-3),
            "{what}: element {i}: scalar {a}, simd {b} (|g·u| {gu})"
        );
    }
}

/// A token's outputs of `kern`'s matmul over random `dtype` weights are the same alone, at any
/// position of a 70-token batch (register-tile and 64-token-tile edges), and on 2 threads, bit
/// for bit.
pub fn integer_rows_do_not_depend_on_their_batch(
    (tier, kern): (&str, &gg_backends::fast::FastKernels),
    dtype: DType,
    rng: &mut gg_ops::testing::XorShift,
    team: &gg_backends::Team,
) {
    use gg_backends::{Activations, Par};
    let (k, n, rows) = (256, 48, 70);
    let xs = rng.vec(rows * k);
    let w = W::new(dtype, n, k, &rng.vec(n * k));
    let p = (kern.pack)(w.view(), 1).unwrap();
    let mut all = vec![0f32; rows * n];
    team.install(|| (kern.matmul)(Activations::dense(&xs, rows, k), &p, &mut all, n, Par { threads: 2 }));
    for t in [0, 7, 8, 9, 15, 16, 17, 36, 63, 64, 69] {
        let mut alone = vec![0f32; n];
        (kern.matmul)(
            Activations::dense(&xs[t * k..(t + 1) * k], 1, k),
            &p,
            &mut alone,
            n,
            Par::SERIAL,
        );
        assert_eq!(
            &all[t * n..(t + 1) * n],
            &alone[..],
            "{tier} {dtype}: token {t} alone vs in a batch of {rows}"
        );
    }
}

/// A matmul's outputs `got (rows, n)` against their definition in f64, `Σ_c w_j[c] · x_t[c]`:
/// `weight_row(j, out)` gives row `j`'s weights and `acts(t)` token `t`'s activation values as
/// the kernels multiply them. Only the f32 accumulation differs, so each output must be within
/// 1e-6 of the sum of its terms' magnitudes.
pub fn assert_matches_definition(
    got: &[f32],
    n: usize,
    k: usize,
    weight_row: impl Fn(usize, &mut [f32]),
    acts: impl Fn(usize) -> Vec<f64>,
    what: &str,
) {
    let mut wrow = vec![0f32; k];
    for t in 0..got.len() / n {
        let x = acts(t);
        for j in 0..n {
            weight_row(j, &mut wrow);
            let (mut want, mut mag) = (0f64, 0f64);
            for (&w, &xc) in wrow.iter().zip(&x) {
                want += w as f64 * xc;
                mag += (w as f64 * xc).abs();
            }
            let err = (got[t * n + j] as f64 - want).abs();
            assert!(
                err <= 1e-6 * mag,
                "{what} token {t} row {j}: {} vs {want} (terms {mag})",
                got[t * n + j]
            );
        }
    }
}

/// Blocks of 32 values for the block quantizers' tests: 200 random ones, then the edges —
/// zeros, exact ties (of 16- and of 8-bit steps), a tiny value beside zeros, a NaN, an
/// infinity, magnitudes near f32's largest.
pub fn quantizer_blocks(rng: &mut gg_ops::testing::XorShift) -> Vec<Vec<f32>> {
    let mut blocks: Vec<Vec<f32>> = (0..200).map(|_| rng.vec(32)).collect();
    blocks.push(vec![0.0; 32]);
    blocks.push((0..32).map(|i| (i as f32 - 16.0) * 0.5).collect()); // many exact ties
    blocks.push((0..32).map(|i| (i as f32 - 15.5) * (127.0 / 15.5)).collect()); // 8-bit ties at ±x.5
    blocks.push((0..32).map(|i| if i == 3 { 1e-30 } else { 0.0 }).collect());
    blocks.push((0..32).map(|i| if i == 7 { f32::NAN } else { 1.0 }).collect());
    blocks.push((0..32).map(|i| if i == 31 { f32::NEG_INFINITY } else { 1.0 }).collect());
    blocks.push((0..32).map(|i| 3e38 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect());
    blocks
}
