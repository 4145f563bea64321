//! Every SIMD kernel against its scalar twin on random data, including lengths that are not
//! a multiple of the vector width. Backends this CPU lacks are skipped with a message.

use gg_backends::kernels::{AttentionArgs, AttentionIo};
use gg_backends::{Activations, Backend, KernelTable, Par, SeqSpan, WeightView};
use gg_ops::testing::XorShift;
use gg_ops::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, DType};
use half::{bf16, f16};

/// The parameters attention calls share, apart from where q/k/v live.
struct Att<'a> {
    seqs: &'a [SeqSpan],
    row_seq: &'a [u32],
    heads: usize,
    kv: usize,
    hd: usize,
    scale: f32,
    window: Option<usize>,
}

impl<'a> Att<'a> {
    fn args<'b>(&self, io: AttentionIo<'b>) -> AttentionArgs<'b>
    where
        'a: 'b,
    {
        AttentionArgs {
            io,
            seqs: self.seqs,
            row_seq: self.row_seq,
            n_heads: self.heads,
            n_kv_heads: self.kv,
            head_dim: self.hd,
            scale: self.scale,
            window: self.window,
        }
    }
}

fn simd_backends() -> Vec<Backend> {
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

fn assert_close(want: &[f32], got: &[f32], what: &str) {
    assert_close_at(want, got, what, 1e-3);
}

/// [`assert_close`] with the error judged against at least `floor`: a dot product of `k` O(1)
/// terms has summation errors on the scale of its terms (about √k), not of its value, which
/// cancellation can make small — the tiers sum in another order (and with FMA).
fn assert_close_at(want: &[f32], got: &[f32], what: &str, floor: f32) {
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
struct W {
    dtype: DType,
    rows: usize,
    cols: usize,
    words: Vec<u64>,
}

/// Every weight type with kernels.
const KINDS: [DType; 11] = [
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
fn blocks_of<B: bytemuck::Pod, const N: usize>(vals: &[f32], quantize: fn(&[f32; N]) -> B) -> Vec<u8> {
    vals.chunks_exact(N)
        .flat_map(|c| bytemuck::bytes_of(&quantize(c.try_into().unwrap())).to_vec())
        .collect()
}

impl W {
    fn new(dtype: DType, rows: usize, cols: usize, vals: &[f32]) -> W {
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
    fn view(&self) -> WeightView<'_> {
        let bytes: &[u8] = bytemuck::cast_slice(&self.words);
        let len = self.dtype.bytes_for(self.rows * self.cols).unwrap();
        WeightView::new(self.dtype, self.rows, self.cols, &bytes[..len]).unwrap()
    }
}

fn run_matmul(kern: &KernelTable, geglu: bool, x: Activations<'_>, w: WeightView<'_>, n: usize, par: Par) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.rows * n];
    let (k, _) = kern.weight(w.dtype()).expect("a kernel for every registered type");
    if geglu {
        (k.matmul_geglu)(x, w, &mut out, n, par);
    } else {
        (k.matmul)(x, w, &mut out, n, par);
    }
    out
}

#[test]
fn row_decoders_match_the_spec() {
    // Decoding is exact: every tier's rows equal the scalar specification's, bit for bit.
    let scalar = Backend::Scalar.table().unwrap();
    let mut rng = XorShift(5);
    for b in simd_backends() {
        let kern = b.table().unwrap();
        for dtype in KINDS {
            let bl = dtype.block_len();
            for cols in [32usize, 64, 96, 800, 512, 768].into_iter().filter(|c| c % bl == 0) {
                let w = W::new(dtype, 3, cols, &rng.vec(3 * cols));
                for (k0, len) in [(0, cols), (bl, cols - bl)].into_iter().filter(|&(_, len)| len > 0) {
                    let (mut want, mut got) = (vec![0f32; len], vec![1f32; len]);
                    (scalar.weight(dtype).unwrap().0.dequantize_row)(w.view(), 2, k0, &mut want);
                    (kern.weight(dtype).unwrap().0.dequantize_row)(w.view(), 2, k0, &mut got);
                    assert_eq!(want, got, "{b} {dtype} row decode, cols {cols}, from {k0}");
                }
            }
        }
    }
}

#[test]
fn matmuls_match_scalar() {
    let scalar = Backend::Scalar.table().unwrap();
    let mut rng = XorShift(42);
    let team = gg_backends::Team::new(2).unwrap();
    for b in simd_backends() {
        let kern = b.table().unwrap();
        for kind in KINDS {
            let ks: &[usize] = match kind.block_len() {
                1 => &[1, 7, 33, 100, 768],
                32 => &[32, 96, 768],
                _ => &[256, 768],
            };
            for &k in ks {
                // 300 tokens: more than one token tile of every decoder (64, and 256 for the
                // specification's decoders).
                for rows in [1usize, 3, 4, 5, 9, 70, 300] {
                    for n in [1usize, 2, 3, 17, 40] {
                        for geglu in [false, true] {
                            let w_rows = if geglu { 2 * n } else { n };
                            let w = W::new(kind, w_rows, k, &rng.vec(w_rows * k));
                            // Columns of a wider row, as matmuls read packed values.
                            let stride = k + 3;
                            let xs = rng.vec(rows * stride);
                            let x = Activations {
                                data: &xs[1..],
                                rows,
                                k,
                                stride,
                            };
                            for par in [Par::SERIAL, Par { threads: 2 }] {
                                let want = run_matmul(scalar, geglu, x, w.view(), n, par);
                                let got = team.install(|| run_matmul(kern, geglu, x, w.view(), n, par));
                                let what =
                                    format!("{b} matmul (weights {kind}, geglu {geglu}) rows {rows} k {k} n {n}");
                                assert_close_at(&want, &got, &what, (k as f32).sqrt());
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn attention_matches_scalar() {
    let scalar = Backend::Scalar.table().unwrap();
    let mut rng = XorShift(7);
    for b in simd_backends() {
        let kern = b.table().unwrap();
        for (heads, kv, hd) in [(3usize, 1usize, 256usize), (2, 2, 20), (4, 2, 13), (6, 1, 24)] {
            let lens = [1usize, 5, 70, 3];
            let seqs: Vec<SeqSpan> = lens
                .iter()
                .scan(0, |s, &len| {
                    let span = SeqSpan { start: *s, len };
                    *s += len;
                    Some(span)
                })
                .collect();
            let rows: usize = lens.iter().sum();
            let row_seq: Vec<u32> = seqs
                .iter()
                .enumerate()
                .flat_map(|(i, s)| std::iter::repeat_n(i as u32, s.len))
                .collect();
            let w = (heads + 2 * kv) * hd;
            let qkv = rng.vec(rows * w);
            let (q, k, v): (Vec<f32>, Vec<f32>, Vec<f32>) = {
                let part = |a: usize, len: usize| {
                    qkv.chunks_exact(w)
                        .flat_map(|r| r[a..a + len].to_vec())
                        .collect::<Vec<f32>>()
                };
                (
                    part(0, heads * hd),
                    part(heads * hd, kv * hd),
                    part(heads * hd + kv * hd, kv * hd),
                )
            };
            for window in [None, Some(2), Some(40)] {
                let att = Att {
                    seqs: &seqs,
                    row_seq: &row_seq,
                    heads,
                    kv,
                    hd,
                    scale: 1.0 / (hd as f32).sqrt(),
                    window,
                };
                let mut want = vec![0f32; rows * heads * hd];
                (scalar.attention)(
                    att.args(AttentionIo::Separate {
                        q: &q,
                        k: &k,
                        v: &v,
                        out: &mut want,
                    }),
                    Par::SERIAL,
                );
                let mut got = vec![0f32; rows * heads * hd];
                (kern.attention)(
                    att.args(AttentionIo::Separate {
                        q: &q,
                        k: &k,
                        v: &v,
                        out: &mut got,
                    }),
                    Par { threads: 2 },
                );
                assert_close(
                    &want,
                    &got,
                    &format!("{b} attention {heads}/{kv}x{hd} window {window:?}"),
                );
                // Packed, in place: the output lands in each row's q columns.
                let mut packed = qkv.clone();
                (kern.attention)(att.args(AttentionIo::Packed { qkv: &mut packed }), Par::SERIAL);
                let got: Vec<f32> = packed.chunks_exact(w).flat_map(|r| r[..heads * hd].to_vec()).collect();
                assert_close(
                    &want,
                    &got,
                    &format!("{b} packed attention {heads}/{kv}x{hd} window {window:?}"),
                );
            }
        }
    }
}

#[test]
fn scalar_packed_attention_equals_separate() {
    // The packed layout is a layout, not a different computation: bit-identical in scalar.
    let scalar = Backend::Scalar.table().unwrap();
    let mut rng = XorShift(9);
    let (heads, kv, hd, rows) = (3usize, 1usize, 16usize, 9usize);
    let seqs = [SeqSpan { start: 0, len: 4 }, SeqSpan { start: 4, len: 5 }];
    let row_seq = [0u32, 0, 0, 0, 1, 1, 1, 1, 1];
    let w = (heads + 2 * kv) * hd;
    let qkv = rng.vec(rows * w);
    let part = |a: usize, len: usize| {
        qkv.chunks_exact(w)
            .flat_map(|r| r[a..a + len].to_vec())
            .collect::<Vec<f32>>()
    };
    let (q, k, v) = (
        part(0, heads * hd),
        part(heads * hd, kv * hd),
        part(heads * hd + kv * hd, kv * hd),
    );
    let att = Att {
        seqs: &seqs,
        row_seq: &row_seq,
        heads,
        kv,
        hd,
        scale: 0.25,
        window: Some(2),
    };
    let mut want = vec![0f32; rows * heads * hd];
    (scalar.attention)(
        att.args(AttentionIo::Separate {
            q: &q,
            k: &k,
            v: &v,
            out: &mut want,
        }),
        Par::SERIAL,
    );
    let mut packed = qkv.clone();
    (scalar.attention)(att.args(AttentionIo::Packed { qkv: &mut packed }), Par::SERIAL);
    let got: Vec<f32> = packed.chunks_exact(w).flat_map(|r| r[..heads * hd].to_vec()).collect();
    assert_eq!(want, got);
}

#[test]
fn exp_matches_libm() {
    #[cfg(target_arch = "x86_64")]
    {
        use gg_backends::kernels::VecOps;
        if !Backend::Avx2.is_available() {
            eprintln!("skipping: no AVX2");
            return;
        }
        let mut rng = XorShift(11);
        // Attention only ever takes exp(score − max) ≤ 1; cover that and a margin above.
        let mut xs: Vec<f32> = (0..20_000).map(|_| rng.unit() * 90.0 - 2.0).collect();
        xs.extend([0.0, -0.0, -1e-8, 1e-8, -87.0, -87.4, -100.0, f32::NEG_INFINITY, 80.0]);
        let mut got = xs.clone();
        let cpu = gg_backends::avx2::Avx2::detect().unwrap();
        gg_backends::avx2::simd::Avx2Ops::new(cpu).exp_sub(&mut got, 0.0);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.exp();
            if x < -87.3 {
                assert!(g == 0.0 || (g - want).abs() <= 1e-37, "exp({x}) = {g}");
                continue;
            }
            let ulp = (want.to_bits() as i64 - g.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}): libm {want}, simd {g} ({ulp} ulp)");
        }
    }
}

#[test]
fn tanh_matches_libm() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        if !Backend::Avx2.is_available() {
            eprintln!("skipping: no AVX2");
            return;
        }
        let mut rng = XorShift(13);
        let mut xs: Vec<f32> = (0..20_000).map(|_| rng.unit() * 12.0).collect();
        xs.extend([0.0, -0.0, 1e-6, -1e-6, 0.6249, 0.625, 0.6251, 9.5, -9.5, 40.0, -40.0]);
        xs.resize(xs.len().div_ceil(8) * 8, 0.5);
        for chunk in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 and FMA checked above.
            unsafe {
                _mm256_storeu_ps(
                    got.as_mut_ptr(),
                    gg_backends::avx2::simd::tanh8(_mm256_loadu_ps(chunk.as_ptr())),
                )
            };
            for (&x, &g) in chunk.iter().zip(&got) {
                let want = x.tanh();
                let err = (want - g).abs();
                assert!(
                    err <= 4.0 * f32::EPSILON * want.abs().max(1e-30) || err <= 1e-37,
                    "tanh({x}): libm {want}, simd {g}"
                );
            }
        }
    }
}

/// Tiers with fast kernels, and the scalar specification's.
fn fast_kernels(b: Backend) -> &'static gg_backends::fast::FastKernels {
    b.table()
        .unwrap()
        .fast(DType::Q8_0)
        .expect("every tier has fast Q8_0 kernels")
}

#[test]
fn fast_quantization_matches_the_spec() {
    // Every tier's block quantizer equals the specification bit for bit: ties, zeros,
    // extremes, and non-finite blocks (d = NaN).
    let mut rng = XorShift(9);
    let mut blocks: Vec<Vec<f32>> = (0..200).map(|_| rng.vec(32)).collect();
    blocks.push(vec![0.0; 32]);
    blocks.push((0..32).map(|i| (i as f32 - 16.0) * 0.5).collect()); // many exact ties
    blocks.push((0..32).map(|i| if i == 3 { 1e-30 } else { 0.0 }).collect());
    blocks.push((0..32).map(|i| if i == 7 { f32::NAN } else { 1.0 }).collect());
    blocks.push((0..32).map(|i| if i == 31 { f32::NEG_INFINITY } else { 1.0 }).collect());
    blocks.push((0..32).map(|i| 3e38 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect());
    for b in simd_backends() {
        let f = fast_kernels(b).quantize;
        for (n, x) in blocks.iter().enumerate() {
            let (mut want, mut got) = ([0i16; 32], [1i16; 32]);
            let dw = gg_backends::fast::quantize_block(x, &mut want);
            let dg = f(x, &mut got);
            assert_eq!(want, got, "{b} quants of block {n}");
            assert!(
                dw.to_bits() == dg.to_bits() || (dw.is_nan() && dg.is_nan()),
                "{b} scale of block {n}: {dw} vs {dg}"
            );
        }
    }
}

#[test]
fn fast_matmuls_match_scalar_bit_for_bit() {
    let scalar = fast_kernels(Backend::Scalar);
    let mut rng = XorShift(77);
    let team = gg_backends::Team::new(2).unwrap();
    for b in simd_backends() {
        let kern = fast_kernels(b);
        for k in [32usize, 96, 768] {
            for rows in [1usize, 3, 8, 9, 16, 17, 40] {
                for n in [1usize, 5, 16, 17, 40, 300] {
                    for geglu in [false, true] {
                        let groups = if geglu { 2 } else { 1 };
                        let w = W::new(DType::Q8_0, groups * n, k, &rng.vec(groups * n * k));
                        let (ps, pk) = (
                            (scalar.pack)(w.view(), groups).unwrap(),
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
                        let want = f(scalar, &ps, Par::SERIAL);
                        for par in [Par::SERIAL, Par { threads: 2 }] {
                            let got = team.install(|| f(kern, &pk, par));
                            let what = format!("{b} fast matmul (geglu {geglu}) rows {rows} k {k} n {n}");
                            if geglu {
                                // The tiers' GELU differs from the scalar one by rounding.
                                assert_close(&want, &got, &what);
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
}

#[test]
fn fast_kernels_take_q4_0_and_q5_0_as_the_q8_0_they_equal() {
    // Q4_0/Q5_0 blocks are Q8_0 blocks with fewer levels: packed, they are the panels of the
    // equivalent Q8_0 weight byte for byte, so every fast kernel (tested above on Q8_0) gives
    // exactly the same outputs on them; and every tier registers them.
    use gg_ops::quant::legacy::SymmetricBlock;
    let mut rng = XorShift(11);
    let (n, k) = (40, 96);
    let vals = rng.vec(n * k);
    for (dtype, q8) in [
        (DType::Q4_0, {
            let b: Vec<BlockQ8_0> = vals
                .chunks_exact(32)
                .map(|c| {
                    let (d, qs) = BlockQ4_0::quantize(c.try_into().unwrap()).scale_and_quants();
                    BlockQ8_0 { d, qs }
                })
                .collect();
            b
        }),
        (DType::Q5_0, {
            let b: Vec<BlockQ8_0> = vals
                .chunks_exact(32)
                .map(|c| {
                    let (d, qs) = BlockQ5_0::quantize(c.try_into().unwrap()).scale_and_quants();
                    BlockQ8_0 { d, qs }
                })
                .collect();
            b
        }),
    ] {
        let w = W::new(dtype, n, k, &vals);
        let q8_view = WeightView::new(DType::Q8_0, n, k, bytemuck::cast_slice(&q8)).unwrap();
        for b in std::iter::once(Backend::Scalar).chain(simd_backends()) {
            let kern = b
                .table()
                .unwrap()
                .fast(dtype)
                .expect("fast kernels for Q4_0 and Q5_0 on every tier");
            let packed = (kern.pack)(w.view(), 1).unwrap();
            let reference = (kern.pack)(q8_view, 1).unwrap();
            for p in 0..packed.panels() {
                assert_eq!(packed.panel(0, p), reference.panel(0, p), "{b} {dtype} panel {p}");
            }
        }
    }
}

#[test]
fn fast_matmul_rows_do_not_depend_on_their_batch() {
    // A token's outputs are the same alone, at any position of a batch, and at any thread
    // count, on every tier (bit for bit).
    let mut rng = XorShift(31);
    let (k, n, rows) = (96, 48, 37);
    let w = W::new(DType::Q8_0, n, k, &rng.vec(n * k));
    let xs = rng.vec(rows * k);
    let team = gg_backends::Team::new(2).unwrap();
    let mut tiers = simd_backends();
    tiers.push(Backend::Scalar);
    for b in tiers {
        let kern = fast_kernels(b);
        let p = (kern.pack)(w.view(), 1).unwrap();
        let mut all = vec![0f32; rows * n];
        team.install(|| (kern.matmul)(Activations::dense(&xs, rows, k), &p, &mut all, n, Par { threads: 2 }));
        for t in [0, 15, 16, 17, 36] {
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
                "{b}: token {t} alone vs in a batch of {rows}"
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_fast_path_without_vnni_matches_scalar_bit_for_bit() {
    // CPUs with AVX-512BW but no VNNI (Skylake-X) take `vpmaddwd` + `vpaddd`; held to that path
    // here whatever this CPU has.
    if !Backend::Avx512.is_available() {
        eprintln!("skipping: no AVX-512 here");
        return;
    }
    let scalar = fast_kernels(Backend::Scalar);
    let bw = gg_backends::avx512::fast::without_vnni();
    let mut rng = XorShift(91);
    for (rows, k, n) in [(1usize, 32usize, 16usize), (9, 96, 40), (17, 768, 33)] {
        for groups in [1usize, 2] {
            let w = W::new(DType::Q8_0, groups * n, k, &rng.vec(groups * n * k));
            let (ps, pb) = (
                (scalar.pack)(w.view(), groups).unwrap(),
                (bw.pack)(w.view(), groups).unwrap(),
            );
            let xs = rng.vec(rows * k);
            let x = Activations::dense(&xs, rows, k);
            let (mut want, mut got) = (vec![0f32; rows * n], vec![1f32; rows * n]);
            if groups == 1 {
                (scalar.matmul)(x, &ps, &mut want, n, Par::SERIAL);
                (bw.matmul)(x, &pb, &mut got, n, Par::SERIAL);
                assert!(
                    want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "rows {rows} k {k} n {n}: not bit-identical"
                );
            } else {
                (scalar.matmul_geglu)(x, &ps, &mut want, n, Par::SERIAL);
                (bw.matmul_geglu)(x, &pb, &mut got, n, Par::SERIAL);
                assert_close(&want, &got, &format!("geglu rows {rows} k {k} n {n}"));
            }
        }
    }
}
