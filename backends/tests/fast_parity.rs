//! The fast precision's kernels: every tier's block quantizer and integer matmuls against the
//! scalar specification, bit for bit, in every panel form (symmetric Q8_0/Q4_0/Q5_0, offset
//! Q4_1/Q5_1/Q4_K/Q5_K, halves Q6_K, wide F16/BF16/F32); the panels against the types'
//! dequantization (the wide form within half a step); the specification against its
//! definition. Backends this CPU lacks are skipped with a message.

use gg_backends::fast::{FastKernels, PanelForm};
use gg_backends::{Activations, Backend, Par, WeightView};
use gg_ops::testing::XorShift;
use gg_ops::{BlockQ4_0, BlockQ5_0, BlockQ8_0, DType};

mod common;
use common::{
    assert_matches_definition, integer_matmuls_match, integer_rows_do_not_depend_on_their_batch, panel_types,
    quantizer_blocks, simd_backends, W,
};

/// A tier's fast kernels for a type.
fn kernels_for(b: Backend, dtype: DType) -> &'static FastKernels {
    b.table()
        .unwrap()
        .fast(dtype)
        .unwrap_or_else(|| panic!("{b} has fast kernels for {dtype}"))
}

/// Tiers with fast kernels, and the scalar specification's.
fn fast_kernels(b: Backend) -> &'static FastKernels {
    kernels_for(b, DType::Q8_0)
}

#[test]
fn fast_quantization_matches_the_spec() {
    // Every tier's block quantizer equals the specification bit for bit: ties, zeros,
    // extremes, and non-finite blocks (d = NaN).
    let mut rng = XorShift(9);
    let blocks = quantizer_blocks(&mut rng);
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
    // Every tier, every form: the same integer sums and f32 operations as the specification.
    let mut rng = XorShift(77);
    let team = gg_backends::Team::new(2).unwrap();
    for (dtype, _) in panel_types(false) {
        for b in simd_backends() {
            integer_matmuls_match(
                kernels_for(Backend::Scalar, dtype),
                (b.name(), kernels_for(b, dtype)),
                dtype,
                &mut rng,
                &team,
            );
        }
    }
}

#[test]
fn panels_hold_every_type_exactly() {
    // A panel's quants, scales and offsets give back each weight value exactly as the type's
    // dequantization (the specification) does, bit for bit; the form is the type's. (The wide
    // form of the float types rounds: see the next test.)
    let mut rng = XorShift(21);
    for (dtype, form) in panel_types(false).into_iter().filter(|&(_, f)| f != PanelForm::Wide) {
        let (n, k) = (21, 512);
        let w = W::new(dtype, n, k, &rng.vec(n * k));
        let kern = kernels_for(Backend::Scalar, dtype);
        let p = (kern.pack)(w.view(), 1).unwrap();
        assert_eq!(p.form(), form, "{dtype}");
        let table = Backend::Scalar.table().unwrap();
        let spec = table.weight(dtype).unwrap();
        let mut row = vec![0f32; k];
        for r in 0..n {
            (spec.dequantize_row)(w.view(), r, 0, &mut row);
            for (c, &want) in row.iter().enumerate() {
                let got = gg_backends::fast::pack::value_at(&p, 0, r, c);
                assert_eq!(got as f32, want, "{dtype} row {r} column {c}");
            }
        }
        for r in n..p.panels() * 16 {
            for c in 0..k {
                assert_eq!(gg_backends::fast::pack::value_at(&p, 0, r, c), 0.0, "padding row {r}");
            }
        }
    }
}

#[test]
fn wide_panels_round_float_weights_to_the_nearest_block_value() {
    // F16/BF16/F32 weights become, per block of 32, `d · q` with `d = amax / 2047` and the
    // nearest `q` — within half a step of the file's value, plus the f32 roundings of `d` and
    // of `v · (2047 / amax)` (each under 2⁻²³ relative, ≤ 2047 steps: 5e-4 of a step); padding
    // rows are zeros.
    let mut rng = XorShift(22);
    for dtype in [DType::F16, DType::BF16, DType::F32] {
        let (n, k) = (21, 512);
        let mut vals = rng.vec(n * k);
        vals[5] = 0.0;
        vals[40..72].fill(0.0); // an all-zero block
        vals[100] = 1e-30; // a block with a tiny value next to ordinary ones
        let w = W::new(dtype, n, k, &vals);
        let p = (kernels_for(Backend::Scalar, dtype).pack)(w.view(), 1).unwrap();
        assert_eq!(p.form(), PanelForm::Wide);
        let spec = Backend::Scalar.table().unwrap().weight(dtype).unwrap();
        let mut row = vec![0f32; k];
        for r in 0..n {
            (spec.dequantize_row)(w.view(), r, 0, &mut row);
            for (b, block) in row.chunks_exact(32).enumerate() {
                let amax = block.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
                let step = amax / 2047.0;
                for (c, &want) in block.iter().enumerate() {
                    let got = gg_backends::fast::pack::value_at(&p, 0, r, b * 32 + c);
                    let err = (got - want as f64).abs();
                    assert!(
                        err <= step * (0.5 + 5e-4) + 1e-45,
                        "{dtype} row {r} column {}: {got} for {want} (step {step})",
                        b * 32 + c
                    );
                }
            }
        }
        for r in n..p.panels() * 16 {
            for c in 0..k {
                assert_eq!(gg_backends::fast::pack::value_at(&p, 0, r, c), 0.0, "padding row {r}");
            }
        }
    }
}

#[test]
fn fast_matmul_is_exact_weights_times_16_bit_activations() {
    // The specification against its definition, in f64: the file's exact weight values (the
    // dequantization) times the activations' 16-bit block values, per type. Only the f32
    // accumulation differs, so the outputs agree to a few ulps of the terms' scale.
    let mut rng = XorShift(23);
    let table = Backend::Scalar.table().unwrap();
    for (dtype, _) in panel_types(false) {
        let (rows, n, k) = (7, 19, 768);
        let w = W::new(dtype, n, k, &rng.vec(n * k));
        let xs = rng.vec(rows * k);
        let kern = kernels_for(Backend::Scalar, dtype);
        let p = (kern.pack)(w.view(), 1).unwrap();
        let mut got = vec![0f32; rows * n];
        (kern.matmul)(Activations::dense(&xs, rows, k), &p, &mut got, n, Par::SERIAL);
        let spec = table.weight(dtype).unwrap();
        // The weights the kernels multiply: the file's (exact forms), or the wide form's
        // rounding of them (its own test above bounds that).
        let weight_row = |j: usize, out: &mut [f32]| {
            if p.form() == PanelForm::Wide {
                for (c, o) in out.iter_mut().enumerate() {
                    *o = gg_backends::fast::pack::value_at(&p, 0, j, c) as f32;
                }
            } else {
                (spec.dequantize_row)(w.view(), j, 0, out);
            }
        };
        let acts = |t: usize| {
            let (mut q, mut d) = (vec![0i16; k], vec![0f32; k / 32]);
            gg_backends::fast::quantize_row(&xs[t * k..(t + 1) * k], &mut q, &mut d);
            (0..k).map(|c| q[c] as f64 * d[c / 32] as f64).collect()
        };
        assert_matches_definition(&got, n, k, weight_row, acts, &format!("{dtype}"));
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
            let kern = kernels_for(b, dtype);
            let packed = (kern.pack)(w.view(), 1).unwrap();
            let reference = (kernels_for(b, DType::Q8_0).pack)(q8_view, 1).unwrap();
            for p in 0..packed.panels() {
                assert_eq!(packed.panel(0, p), reference.panel(0, p), "{b} {dtype} panel {p}");
            }
        }
    }
}

#[test]
fn fast_matmul_rows_do_not_depend_on_their_batch() {
    // A token's outputs are the same alone, at any position of a batch, and at any thread
    // count, on every tier and in every form (bit for bit).
    let mut rng = XorShift(31);
    let team = gg_backends::Team::new(2).unwrap();
    let mut tiers = simd_backends();
    tiers.push(Backend::Scalar);
    for (b, (dtype, _)) in tiers
        .iter()
        .flat_map(|&b| panel_types(false).into_iter().map(move |t| (b, t)))
    {
        integer_rows_do_not_depend_on_their_batch((b.name(), kernels_for(b, dtype)), dtype, &mut rng, &team);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_fast_path_without_vnni_matches_scalar_bit_for_bit() {
    // CPUs with AVX-512BW but no VNNI (Skylake-X) take `vpmaddwd` + `vpaddd`; held to that path
    // here whatever this CPU has, for every quantized type (all three panel forms).
    if !Backend::Avx512.is_available() {
        eprintln!("skipping: no AVX-512 here");
        return;
    }
    let mut rng = XorShift(91);
    let team = gg_backends::Team::new(2).unwrap();
    for row in gg_backends::avx512::without_vnni() {
        let Some(bw) = &row.fast else { continue };
        let dtype = row.dtype;
        integer_matmuls_match(
            kernels_for(Backend::Scalar, dtype),
            ("avx512bw", bw),
            dtype,
            &mut rng,
            &team,
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_fast_path_without_avx_vnni_matches_scalar_bit_for_bit() {
    // CPUs with AVX2 but no AVX-VNNI (Zen 3, Skylake) take `vpmaddwd` + `vpaddd`; held to that
    // path here whatever this CPU has, for every quantized type.
    if !Backend::Avx2.is_available() {
        eprintln!("skipping: no AVX2 here");
        return;
    }
    let mut rng = XorShift(96);
    let team = gg_backends::Team::new(2).unwrap();
    for row in gg_backends::avx2::without_vnni() {
        let Some(madd) = &row.fast else { continue };
        let dtype = row.dtype;
        integer_matmuls_match(
            kernels_for(Backend::Scalar, dtype),
            ("avx2 madd", madd),
            dtype,
            &mut rng,
            &team,
        );
    }
}

#[test]
fn quantized_rows_match_the_spec_with_and_without_the_fused_norm() {
    // A tier's row quantizer (one and two threads, with block sums, with the RMSNorm fused in)
    // writes exactly the words of the scalar specification; the fused norm equals the tier's
    // RMSNorm followed by the quantizer, bit for bit.
    use gg_backends::fast::qrow_words;
    let mut rng = XorShift(51);
    let team = gg_backends::Team::new(2).unwrap();
    let scalar = Backend::Scalar.table().unwrap();
    let spec = kernels_for(Backend::Scalar, DType::Q8_0);
    for b in std::iter::once(Backend::Scalar).chain(simd_backends()) {
        let table = b.table().unwrap();
        let kern = kernels_for(b, DType::Q8_0);
        for (rows, k) in [(1usize, 32usize), (7, 96), (70, 768)] {
            let xs = rng.vec(rows * k);
            let w = rng.vec(k);
            let x = Activations::dense(&xs, rows, k);
            for norm in [None, Some((&w[..], 1e-6f32))] {
                for with_sums in [false, true] {
                    let mut want = vec![0u32; rows * qrow_words(k)];
                    (spec.quantize_rows)(x, norm, &mut want, with_sums, Par::SERIAL);
                    // The AMX tier writes the same quants in byte planes (its tiles' layout).
                    #[cfg(target_arch = "x86_64")]
                    if b == Backend::Amx {
                        for row in want.chunks_exact_mut(qrow_words(k)) {
                            gg_backends::amx::fast::to_planes(row, k);
                        }
                    }
                    for par in [Par::SERIAL, Par { threads: 2 }] {
                        let mut got = vec![1u32; rows * qrow_words(k)];
                        team.install(|| (kern.quantize_rows)(x, norm, &mut got, with_sums, par));
                        if !with_sums {
                            // Sums are left alone when not asked for.
                            for r in 0..rows {
                                // (The block sums and the two halves' sums.)
                                let at = r * qrow_words(k) + k / 2 + k / 32;
                                got[at..at + 3 * k / 32].copy_from_slice(&want[at..at + 3 * k / 32]);
                            }
                        }
                        assert_eq!(
                            want,
                            got,
                            "{b} rows {rows} k {k} norm {} sums {with_sums} threads {}",
                            norm.is_some(),
                            par.threads
                        );
                    }
                    if let Some((w, eps)) = norm {
                        // The fused norm = the tier's norm, then quantization.
                        let mut normed = xs.clone();
                        (table.rms_norm)(&mut normed, w, k, eps, Par::SERIAL);
                        let mut separate = vec![0u32; rows * qrow_words(k)];
                        (kern.quantize_rows)(
                            Activations::dense(&normed, rows, k),
                            None,
                            &mut separate,
                            with_sums,
                            Par::SERIAL,
                        );
                        let mut fused = vec![0u32; rows * qrow_words(k)];
                        (kern.quantize_rows)(x, norm, &mut fused, with_sums, Par::SERIAL);
                        assert_eq!(separate, fused, "{b} fused norm, rows {rows} k {k}");
                        // ... and the scalar norm too (the tiers' norms are bit-identical).
                        let mut normed_spec = xs.clone();
                        (scalar.rms_norm)(&mut normed_spec, w, k, eps, Par::SERIAL);
                        assert_eq!(normed, normed_spec);
                    }
                }
            }
        }
    }
}
