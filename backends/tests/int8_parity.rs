//! The int8 precision's kernels: every tier that has them (AVX-512 with VNNI) against the scalar
//! specification bit for bit — block quantizer, fused-norm row quantization, matmuls in every
//! 8-bit panel form (symmetric Q8_0/Q4_0/Q5_0, offset Q4_1/Q5_1/Q4_K/Q5_K, halves Q6_K), 1 and
//! 2 threads; the quads panels against the types' dequantization; the specification against its
//! definition; rows independent of their batch. Tiers this CPU cannot run are skipped with a
//! message.

use gg_backends::fast::int8::{quantize_block8, quantize_row8};
use gg_backends::fast::pack::{value_at, Layout};
use gg_backends::fast::{qrow_words, FastKernels, QRows};
use gg_backends::{Activations, Backend, Par};
use gg_ops::testing::XorShift;
use gg_ops::DType;

mod common;
use common::{
    assert_matches_definition, integer_matmuls_match, integer_rows_do_not_depend_on_their_batch, panel_types,
    quantizer_blocks, W,
};

fn kernels_for(b: Backend, dtype: DType) -> &'static FastKernels {
    b.table()
        .unwrap()
        .int8(dtype)
        .unwrap_or_else(|| panic!("{b} has int8 kernels for {dtype}"))
}

/// The SIMD tiers with int8 kernels this CPU can run.
fn int8_tiers() -> Vec<Backend> {
    let mut tiers = Vec::new();
    for &b in Backend::all().iter().filter(|&&b| b != Backend::Scalar) {
        let Ok(table) = b.table() else {
            eprintln!("skipping the {b} backend: this CPU does not support it");
            continue;
        };
        match table.int8_available() {
            Err(None) => eprintln!("{b}: no int8 kernels (not a tier of the int8 precision)"),
            Err(Some(f)) => eprintln!("skipping {b}'s int8 kernels: this CPU lacks {f}"),
            Ok(()) => tiers.push(b),
        }
    }
    tiers
}

#[test]
fn int8_quantization_matches_the_spec() {
    let mut rng = XorShift(90);
    let blocks = quantizer_blocks(&mut rng);
    let mut tiers = int8_tiers();
    tiers.push(Backend::Scalar);
    for b in tiers {
        let f = kernels_for(b, DType::Q8_0).quantize;
        for (n, x) in blocks.iter().enumerate() {
            let (mut want, mut got) = ([0i8; 32], [1i16; 32]);
            let dw = quantize_block8(x, &mut want);
            let dg = f(x, &mut got);
            assert_eq!(want.map(|v| v as i16), got, "{b} quants of block {n}");
            assert!(
                dw.to_bits() == dg.to_bits() || (dw.is_nan() && dg.is_nan()),
                "{b} scale of block {n}: {dw} vs {dg}"
            );
            // Within half a step of the value (plus the rounding of x · (1/d)).
            if dw.is_finite() {
                for (v, &q) in x.iter().zip(&want) {
                    let err = (*v as f64 - q as f64 * dw as f64).abs();
                    assert!(err <= 0.5 * dw as f64 * (1.0 + 1e-5) + 1e-37, "{v} vs {q}·{dw}");
                }
            }
        }
    }
}

#[test]
fn int8_rows_match_the_spec_with_and_without_the_fused_norm() {
    let mut rng = XorShift(91);
    let team = gg_backends::Team::new(2).unwrap();
    for b in int8_tiers() {
        let (spec, kern) = (kernels_for(Backend::Scalar, DType::Q8_0), kernels_for(b, DType::Q8_0));
        for (rows, k) in [(1, 32), (5, 96), (17, 768)] {
            let xs = rng.vec(rows * k);
            let nw = rng.vec(k);
            for norm in [None, Some((&nw[..], 1e-6))] {
                let mut want = vec![0u32; rows * qrow_words(k)];
                (spec.quantize_rows)(Activations::dense(&xs, rows, k), norm, &mut want, false, Par::SERIAL);
                for par in [Par::SERIAL, Par { threads: 2 }] {
                    let mut got = vec![0u32; rows * qrow_words(k)];
                    team.install(|| (kern.quantize_rows)(Activations::dense(&xs, rows, k), norm, &mut got, false, par));
                    assert_eq!(want, got, "{b} rows {rows} k {k} norm {}", norm.is_some());
                }
            }
        }
    }
}

#[test]
fn int8_matmuls_match_scalar_bit_for_bit() {
    let mut rng = XorShift(92);
    let team = gg_backends::Team::new(2).unwrap();
    for (dtype, _) in panel_types(true) {
        for b in int8_tiers() {
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
fn quads_panels_hold_every_type_exactly() {
    let mut rng = XorShift(93);
    let table = Backend::Scalar.table().unwrap();
    for (dtype, form) in panel_types(true) {
        let (n, k) = (21, 512);
        let w = W::new(dtype, n, k, &rng.vec(n * k));
        let p = (kernels_for(Backend::Scalar, dtype).pack)(w.view(), 1).unwrap();
        assert_eq!((p.form(), p.layout()), (form, Layout::Quads), "{dtype}");
        let spec = table.weight(dtype).unwrap();
        let mut row = vec![0f32; k];
        for r in 0..n {
            (spec.dequantize_row)(w.view(), r, 0, &mut row);
            for (c, &want) in row.iter().enumerate() {
                assert_eq!(value_at(&p, 0, r, c) as f32, want, "{dtype} row {r} column {c}");
            }
        }
        for r in n..p.panels() * 16 {
            for c in 0..k {
                assert_eq!(value_at(&p, 0, r, c), 0.0, "padding row {r}");
            }
        }
    }
    // Float weights have no 8-bit quants: the lowering gives them the fast kernels.
    for dtype in [DType::F16, DType::BF16, DType::F32] {
        assert!(table.int8(dtype).is_none(), "{dtype}");
    }
}

#[test]
fn int8_matmul_is_exact_weights_times_8_bit_activations() {
    // The specification against its definition in f64: the file's exact weights times the
    // activations' 8-bit block values; only the f32 accumulation differs.
    let mut rng = XorShift(94);
    let table = Backend::Scalar.table().unwrap();
    for (dtype, _) in panel_types(true) {
        let (rows, n, k) = (7, 19, 768);
        let w = W::new(dtype, n, k, &rng.vec(n * k));
        let xs = rng.vec(rows * k);
        let kern = kernels_for(Backend::Scalar, dtype);
        let p = (kern.pack)(w.view(), 1).unwrap();
        let mut got = vec![0f32; rows * n];
        (kern.matmul)(Activations::dense(&xs, rows, k), &p, &mut got, n, Par::SERIAL);
        let spec = table.weight(dtype).unwrap();
        let acts = |t: usize| {
            let (mut q, mut d, mut s) = (vec![0i8; k], vec![0f32; k / 32], vec![0i32; k / 16]);
            quantize_row8(&xs[t * k..(t + 1) * k], &mut q, &mut d, &mut s);
            (0..k).map(|c| q[c] as f64 * d[c / 32] as f64).collect()
        };
        let weight_row = |j: usize, out: &mut [f32]| (spec.dequantize_row)(w.view(), j, 0, out);
        assert_matches_definition(&got, n, k, weight_row, acts, &format!("{dtype}"));
    }
}

#[test]
fn int8_rows_do_not_depend_on_their_batch() {
    let mut rng = XorShift(95);
    let team = gg_backends::Team::new(2).unwrap();
    let mut tiers = int8_tiers();
    tiers.push(Backend::Scalar);
    for (b, (dtype, _)) in tiers
        .iter()
        .flat_map(|&b| panel_types(true).into_iter().map(move |t| (b, t)))
    {
        integer_rows_do_not_depend_on_their_batch((b.name(), kernels_for(b, dtype)), dtype, &mut rng, &team);
    }
}

#[test]
fn int8_rows_are_read_where_they_were_written() {
    // The tile accessors read back what the row quantizer wrote (quants, scales, half sums).
    let mut rng = XorShift(96);
    let (rows, k) = (3, 96);
    let xs = rng.vec(rows * k);
    let kern = kernels_for(Backend::Scalar, DType::Q8_0);
    let mut words = vec![0u32; rows * qrow_words(k)];
    (kern.quantize_rows)(Activations::dense(&xs, rows, k), None, &mut words, false, Par::SERIAL);
    let tile = QRows::new(&words, k, rows, false).tile(0, rows);
    for t in 0..rows {
        let (mut q, mut d, mut s) = (vec![0i8; k], vec![0f32; k / 32], vec![0i32; k / 16]);
        quantize_row8(&xs[t * k..(t + 1) * k], &mut q, &mut d, &mut s);
        for (c, &want) in q.iter().enumerate() {
            assert_eq!(tile.quant8(t, c), want, "token {t} value {c}");
        }
        for b in 0..k / 32 {
            assert_eq!(tile.scale8(t, b), d[b]);
            let halves = [tile.half_sum8(t, b, 0), tile.half_sum8(t, b, 1)];
            assert_eq!(halves, [s[2 * b], s[2 * b + 1]]);
            let direct: i32 = q[b * 32..b * 32 + 16].iter().map(|&v| v as i32).sum();
            assert_eq!(halves[0], direct);
        }
    }
}
