//! Every SIMD kernel against its scalar twin on random data, including lengths that are not
//! a multiple of the vector width. Backends this CPU lacks are skipped with a message.

#[cfg(target_arch = "x86_64")]
use gg_backends::cpu::CpuToken;
use gg_backends::kernels::{AttentionArgs, AttentionIo};
use gg_backends::{Activations, Backend, KernelTable, Par, SeqSpan, WeightView};
use gg_ops::testing::XorShift;

mod common;
use common::{assert_close, assert_close_at, kinds, simd_backends, W};

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

fn run_matmul(kern: &KernelTable, geglu: bool, x: Activations<'_>, w: WeightView<'_>, n: usize, par: Par) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.rows * n];
    let k = kern.weight(w.dtype()).expect("a kernel for every registered type");
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
        for dtype in kinds() {
            let bl = dtype.block_len();
            for cols in [32usize, 64, 96, 800, 512, 768].into_iter().filter(|c| c % bl == 0) {
                let w = W::new(dtype, 3, cols, &rng.vec(3 * cols));
                for (k0, len) in [(0, cols), (bl, cols - bl)].into_iter().filter(|&(_, len)| len > 0) {
                    let (mut want, mut got) = (vec![0f32; len], vec![1f32; len]);
                    (scalar.weight(dtype).unwrap().dequantize_row)(w.view(), 2, k0, &mut want);
                    (kern.weight(dtype).unwrap().dequantize_row)(w.view(), 2, k0, &mut got);
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
        for kind in kinds() {
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
fn softmax_primitives_match_scalar() {
    // max, exp_sub_sum and scale against the scalar twins, tails included, −∞ (masked keys)
    // mixed in; max and scale are exact, the sum is taken in another order (lanes).
    #[cfg(target_arch = "x86_64")]
    {
        use gg_backends::kernels::VecOps;
        use gg_backends::scalar::attention::ScalarOps;
        fn check<V: VecOps>(name: &str, ops: V, x: &[f32]) {
            let len = x.len();
            let m = ScalarOps.max(x);
            assert_eq!(ops.max(x), m, "{name} max, len {len}");
            let m = m.max(0.0);
            let (mut want, mut got) = (x.to_vec(), x.to_vec());
            let (want_sum, got_sum) = (ScalarOps.exp_sub_sum(&mut want, m), ops.exp_sub_sum(&mut got, m));
            assert!(
                (got_sum - want_sum).abs() <= 1e-5 * want_sum.max(1.0),
                "{name} exp_sub_sum, len {len}: {got_sum} vs {want_sum}"
            );
            assert_close(&want, &got, &format!("{name} exp_sub_sum values, len {len}"));
            let (mut want, mut got) = (x.to_vec(), x.to_vec());
            ScalarOps.scale(&mut want, 0.37);
            ops.scale(&mut got, 0.37);
            assert_eq!(want, got, "{name} scale, len {len}");
        }
        let Some(avx2) = gg_backends::avx2::Avx2::detect() else {
            eprintln!("skipping: no AVX2");
            return;
        };
        let avx512 = gg_backends::avx512::Avx512::detect();
        let mut rng = XorShift(17);
        for len in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 31, 63, 64] {
            let mut x: Vec<f32> = (0..len).map(|_| rng.unit() * 20.0 - 10.0).collect();
            if len > 2 {
                x[1] = f32::NEG_INFINITY;
            }
            check("avx2", gg_backends::avx2::simd::Avx2Ops::new(avx2), &x);
            if let Some(cpu) = avx512 {
                check("avx512", gg_backends::avx512::attention::Avx512Ops::new(cpu), &x);
            }
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

#[test]
fn row_ops_match_scalar_bit_for_bit() {
    // RMSNorm (alone, added, the residual pair), RoPE and the fused norm + RoPE: every tier
    // computes the specification's operations in its order, so the results are identical, on
    // widths with tails past the vector length, one and two threads, batches past a
    // parallel unit.
    let scalar = Backend::Scalar.table().unwrap();
    let team = gg_backends::Team::new(2).unwrap();
    let mut rng = XorShift(41);
    let same = |want: &[f32], got: &[f32], what: &str| {
        assert!(
            want.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits()) && want.len() == got.len(),
            "{what}: not bit-identical to the scalar spec"
        );
    };
    for b in simd_backends() {
        let kern = b.table().unwrap();
        for cols in [1usize, 7, 8, 13, 16, 31, 40, 768] {
            for rows in [1usize, 5, 33, 70] {
                let x = rng.vec(rows * cols);
                let a = rng.vec(rows * cols);
                let (w1, w2) = (rng.vec(cols), rng.vec(cols));
                let eps = 1e-6;
                for par in [Par::SERIAL, Par { threads: 2 }] {
                    let what = |op: &str| format!("{b} {op} rows {rows} cols {cols} threads {}", par.threads);
                    let run = |f: &dyn Fn(&KernelTable, &mut Vec<f32>)| {
                        let (mut want, mut got) = (Vec::new(), Vec::new());
                        f(scalar, &mut want);
                        team.install(|| f(kern, &mut got));
                        (want, got)
                    };
                    let (want, got) = run(&|t, out| {
                        *out = x.clone();
                        (t.rms_norm)(out, &w1, cols, eps, par);
                    });
                    same(&want, &got, &what("rms_norm"));
                    let (want, got) = run(&|t, out| {
                        *out = x.clone();
                        (t.add_rms_norm)(out, &a, &w1, eps, par);
                    });
                    same(&want, &got, &what("add_rms_norm"));
                    let (want, got) = run(&|t, out| {
                        *out = x.iter().zip(&a).flat_map(|(&u, &v)| [u, v]).collect();
                        (t.residual_norm)(out, &a, &w1, &w2, eps, par);
                    });
                    same(&want, &got, &what("residual_norm"));
                }
            }
        }
        // RoPE on heads of even sizes, alone and after the per-head norm on a column window.
        for hd in [2usize, 6, 16, 34, 256] {
            let (heads, rows) = (3, 37);
            let cols = heads * hd + 5;
            let half = hd / 2;
            let positions = 64;
            let cos: Vec<f32> = (0..positions * half).map(|i| (i as f32 * 0.37).cos()).collect();
            let sin: Vec<f32> = (0..positions * half).map(|i| (i as f32 * 0.37).sin()).collect();
            let pos: Vec<i32> = (0..rows as i32).map(|r| (r * 7) % positions as i32).collect();
            let x = rng.vec(rows * cols);
            let w = rng.vec(hd);
            let (mut want, mut got) = (x[..rows * heads * hd].to_vec(), x[..rows * heads * hd].to_vec());
            (scalar.rope)(&mut want, heads * hd, &pos, hd, &cos, &sin);
            (kern.rope)(&mut got, heads * hd, &pos, hd, &cos, &sin);
            same(&want, &got, &format!("{b} rope hd {hd}"));
            for window in [(0, cols - 5), (2, 2 * hd), (5, heads * hd)] {
                for par in [Par::SERIAL, Par { threads: 2 }] {
                    let (mut want, mut got) = (x.clone(), x.clone());
                    (scalar.rms_norm_rope)(&mut want, cols, window, &w, hd, 1e-6, &pos, &cos, &sin, Par::SERIAL);
                    team.install(|| (kern.rms_norm_rope)(&mut got, cols, window, &w, hd, 1e-6, &pos, &cos, &sin, par));
                    same(&want, &got, &format!("{b} rms_norm_rope hd {hd} window {window:?}"));
                    // Untouched columns stay as they were.
                    for (r, row) in got.chunks_exact(cols).enumerate() {
                        let orig = &x[r * cols..(r + 1) * cols];
                        assert_eq!(&row[..window.0], &orig[..window.0]);
                        assert_eq!(&row[window.0 + window.1..], &orig[window.0 + window.1..]);
                    }
                }
            }
        }
    }
}
