//! The AMX tier against the scalar specifications of the fast and int8 precisions, bit for bit.
//! On every x86-64 CPU: the software model of the tile instructions against their definition,
//! and the tier's loops, activation layout (byte planes) and packing (quads) run on that model
//! with the scalar epilogue (and with the AVX-512 one where the CPU has AVX-512). On a CPU with
//! AMX (and the tile state granted): the tier's real kernels, every quantized type, plain and
//! GeGLU, 1 and 2 threads, tails of tokens, rows and k.
#![cfg(target_arch = "x86_64")]

use gg_backends::amx::tile::{Config, Model, TileUnit, K, T};
use gg_backends::fast::int8::{panel_dots8, quantize_row8};
use gg_backends::fast::pack::{self, Layout, PackedQ8, PANEL};
use gg_backends::fast::scalar::{panel_dots, Scalar};
use gg_backends::fast::{qrow_words, QRows, QBLOCK, TOKEN_TILE};
use gg_backends::wtypes::{PanelForm, HALVES, HALVES_OFFSET, OFFSET, SYMMETRIC};
use gg_backends::{cpu, Backend};
use gg_ops::testing::XorShift;
use gg_ops::DType;

mod common;
use common::{integer_matmuls_match, integer_rows_do_not_depend_on_their_batch, panel_types, W};

#[test]
fn the_tile_model_is_the_instructions_definition() {
    // C[m][n] += Σ_k a[m][k] · b[k/4][4n + k%4], each sign combination, K = 32 and 16.
    let mut rng = XorShift(701);
    for k in [K::Block, K::Half] {
        let kk = k as usize;
        let a: Vec<u8> = (0..16 * kk).map(|_| rng.next_u64() as u8).collect();
        let b: Vec<u8> = (0..kk / 4 * 64).map(|_| rng.next_u64() as u8).collect();
        let mut m = Model::default();
        m.configure(Box::leak(Box::new(Config::new(k, 16))));
        let check = |m: &mut Model, signs: (bool, bool)| {
            let mut c = [[0i32; 16]; 16];
            // SAFETY: 16 rows of 64 bytes.
            unsafe { m.store(T::C0, c.as_mut_ptr() as *mut u8, 64) };
            for (mi, row) in c.iter().enumerate() {
                for (n, &got) in row.iter().enumerate() {
                    let byte = |v: u8, s: bool| if s { v as i8 as i32 } else { v as i32 };
                    let want: i32 = (0..kk)
                        .map(|x| byte(a[mi * kk + x], signs.0) * byte(b[(x / 4) * 64 + 4 * n + x % 4], signs.1))
                        .sum();
                    assert_eq!(got, want, "{k:?} signs {signs:?} C[{mi}][{n}]");
                }
            }
        };
        // SAFETY: A is 16 rows of `kk` bytes, B `kk / 4` rows of 64.
        unsafe {
            m.load(T::A, a.as_ptr(), kk);
            m.load(T::B, b.as_ptr(), 64);
        }
        m.zero(T::C0);
        m.dp::<true, true>(T::C0, T::A, T::B);
        check(&mut m, (true, true));
        m.zero(T::C0);
        m.dp::<true, false>(T::C0, T::A, T::B);
        check(&mut m, (true, false));
        m.zero(T::C0);
        m.dp::<false, true>(T::C0, T::A, T::B);
        check(&mut m, (false, true));
        m.zero(T::C0);
        m.dp::<false, false>(T::C0, T::A, T::B);
        check(&mut m, (false, false));
    }
}

/// `rows` random activation rows of `k` quantized by the fast precision's specification, in
/// pairs (for the spec) and in byte planes (the AMX layout).
fn fast_rows(rng: &mut XorShift, rows: usize, k: usize, with_sums: bool) -> (Vec<u32>, Vec<u32>) {
    let w = qrow_words(k);
    let x = rng.vec(rows * k);
    let mut pairs = vec![0u32; rows * w];
    for (r, out) in pairs.chunks_exact_mut(w).enumerate() {
        gg_backends::fast::drive::write_pairs::<Scalar>(&x[r * k..(r + 1) * k], out, with_sums);
    }
    let mut planes = pairs.clone();
    for out in planes.chunks_exact_mut(w) {
        gg_backends::amx::fast::to_planes(out, k);
    }
    (pairs, planes)
}

/// The same for the int8 precision (its layout is the AMX tier's as it is).
fn int8_rows(rng: &mut XorShift, rows: usize, k: usize) -> Vec<u32> {
    let w = qrow_words(k);
    let x = rng.vec(rows * k);
    let mut words = vec![0u32; rows * w];
    for (r, out) in words.chunks_exact_mut(w).enumerate() {
        let (q, rest) = out.split_at_mut(k / 4);
        let (d, rest) = rest.split_at_mut(k / QBLOCK);
        quantize_row8(
            &x[r * k..(r + 1) * k],
            bytemuck::cast_slice_mut(q),
            bytemuck::cast_slice_mut(d),
            bytemuck::cast_slice_mut(&mut rest[..2 * k / QBLOCK]),
        );
    }
    words
}

type Dots<'a> = &'a dyn Fn(&gg_backends::fast::QTile, &[u8], &mut [[f32; PANEL]; TOKEN_TILE]);

/// The AMX tier's fast or int8 loop on the tile model for a form, with the AVX-512 epilogue
/// (`avx512`, only where the CPU has it) or the scalar one.
fn model_dots(
    int8: bool,
    form: PanelForm,
    avx512: bool,
    tile: &gg_backends::fast::QTile,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    use gg_backends::amx::{fast, int8 as i8k};
    macro_rules! go {
        ($form:ident) => {
            match (int8, avx512) {
                (false, false) => fast::dots_model::<$form>(tile, panel, out),
                (true, false) => i8k::dots_model::<$form>(tile, panel, out),
                (false, true) => {
                    assert!(Backend::Avx512.is_available());
                    // SAFETY: AVX-512 is available (asserted).
                    unsafe { fast::dots_model_avx512::<$form>(tile, panel, out) }
                }
                (true, true) => {
                    assert!(Backend::Avx512.is_available());
                    // SAFETY: AVX-512 is available (asserted).
                    unsafe { i8k::dots_model_avx512::<$form>(tile, panel, out) }
                }
            }
        };
    }
    match form {
        PanelForm::Symmetric => go!(SYMMETRIC),
        PanelForm::Offset => go!(OFFSET),
        PanelForm::Halves => go!(HALVES),
        PanelForm::HalvesOffset => go!(HALVES_OFFSET),
        PanelForm::Wide => unreachable!("the wide form keeps the AVX-512 kernels"),
    }
}

fn spec_fast(form: PanelForm) -> fn(&gg_backends::fast::QTile, usize, &[u8]) -> [f32; PANEL] {
    match form {
        PanelForm::Symmetric => panel_dots::<SYMMETRIC>,
        PanelForm::Offset => panel_dots::<OFFSET>,
        PanelForm::Halves => panel_dots::<HALVES>,
        PanelForm::HalvesOffset => panel_dots::<HALVES_OFFSET>,
        PanelForm::Wide => unreachable!(),
    }
}

fn spec_int8(form: PanelForm) -> fn(&gg_backends::fast::QTile, usize, &[u8]) -> [f32; PANEL] {
    match form {
        PanelForm::Symmetric => panel_dots8::<SYMMETRIC>,
        PanelForm::Offset => panel_dots8::<OFFSET>,
        PanelForm::Halves => panel_dots8::<HALVES>,
        PanelForm::HalvesOffset => panel_dots8::<HALVES_OFFSET>,
        PanelForm::Wide => unreachable!(),
    }
}

type Spec = fn(&gg_backends::fast::QTile, usize, &[u8]) -> [f32; PANEL];

/// Every panel of `w`, tokens in tiles of up to 64: `got` against `want`, bit for bit.
fn panels_match(what: &str, spec: (&QRows, &PackedQ8, Spec), ours: (&QRows, &PackedQ8, Dots)) {
    let (xs, ws, want) = spec;
    let (xo, wo, got) = ours;
    for t0 in (0..xs.rows()).step_by(TOKEN_TILE) {
        let t1 = (t0 + TOKEN_TILE).min(xs.rows());
        let (ts, to) = (xs.tile(t0, t1), xo.tile(t0, t1));
        for p in 0..ws.panels() {
            let mut out = [[f32::NAN; PANEL]; TOKEN_TILE];
            got(&to, wo.panel(0, p), &mut out);
            for (t, got) in out.iter().enumerate().take(t1 - t0) {
                let w = want(&ts, t, ws.panel(0, p));
                let same = w.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{what}: token {} panel {p}: {:?} vs {:?}",
                    t0 + t,
                    &w[..4],
                    &got[..4]
                );
            }
        }
    }
}

#[test]
fn amx_loops_on_the_tile_model_match_the_specs() {
    let mut rng = XorShift(702);
    let avx512 = Backend::Avx512.is_available();
    if !avx512 {
        eprintln!("this CPU has no AVX-512: the model runs with the scalar epilogue only");
    }
    let epilogues: &[bool] = if avx512 { &[false, true] } else { &[false] };
    for (dtype, form) in panel_types(true) {
        let kquant = dtype.block_len() == 256;
        let ks: &[usize] = if kquant { &[256, 768] } else { &[32, 96, 768] };
        for &k in ks {
            for rows in [1, 5, 16, 17, 40, 64, 70] {
                let n = 21;
                let wt = W::new(dtype, n, k, &rng.vec(n * k));
                let with_sums = form.has_offsets();
                // The fast precision: pairs + pairs panels (spec) against planes + signed quads.
                let pairs_w = packer(dtype, Layout::Pairs)(wt.view()).unwrap();
                let quads_w = packer(dtype, Layout::QuadsSigned)(wt.view()).unwrap();
                let (pairs, planes) = fast_rows(&mut rng, rows, k, with_sums);
                let xs = QRows::new(&pairs, k, rows, with_sums);
                let xo = QRows::new(&planes, k, rows, with_sums);
                for &e in epilogues {
                    let what = format!("fast {dtype} k {k} rows {rows} avx512 epilogue {e}");
                    let dots = |t: &gg_backends::fast::QTile, p: &[u8], o: &mut [[f32; PANEL]; TOKEN_TILE]| {
                        model_dots(false, form, e, t, p, o)
                    };
                    panels_match(&what, (&xs, &pairs_w, spec_fast(form)), (&xo, &quads_w, &dots));
                }
                // int8: its rows as they are; biased quads (spec) against signed quads.
                let words = int8_rows(&mut rng, rows, k);
                let x8 = QRows::new(&words, k, rows, with_sums);
                let q8 = packer(dtype, Layout::Quads)(wt.view()).unwrap();
                for &e in epilogues {
                    let what = format!("int8 {dtype} k {k} rows {rows} avx512 epilogue {e}");
                    let dots = |t: &gg_backends::fast::QTile, p: &[u8], o: &mut [[f32; PANEL]; TOKEN_TILE]| {
                        model_dots(true, form, e, t, p, o)
                    };
                    panels_match(&what, (&x8, &q8, spec_int8(form)), (&x8, &quads_w, &dots));
                }
            }
        }
    }
}

type PackOne = fn(gg_ops::WeightView<'_>) -> Result<PackedQ8, String>;

/// A packer of `dtype` weights in `layout`: pairs (the fast spec's), quads (int8's) or signed
/// quads (the AMX tier's fast kernels').
fn packer(dtype: DType, layout: Layout) -> PackOne {
    macro_rules! by_type {
        ($($d:ident => $t:ident),*) => {
            match (dtype, layout) {
                $(
                    (DType::$d, Layout::Pairs) => |w| pack::pack::<gg_backends::wtypes::$t>(w, 1),
                    (DType::$d, Layout::Quads) => |w| pack::pack_quads::<gg_backends::wtypes::$t>(w, 1),
                    (DType::$d, Layout::QuadsSigned) => |w| pack::pack_quads_signed::<gg_backends::wtypes::$t>(w, 1),
                )*
                (other, _) => panic!("no packer for {other}"),
            }
        };
    }
    by_type!(Q8_0 => Q8_0, Q4_0 => Q4_0, Q5_0 => Q5_0, Q4_1 => Q4_1, Q5_1 => Q5_1, Q2K => Q2K, Q3K => Q3K, Q4K => Q4K, Q5K => Q5K, Q6K => Q6K, IQ4NL => Iq4Nl, IQ4XS => Iq4Xs, IQ3S => Iq3S)
}

/// The AMX tier's kernels, where this CPU has them (and Linux grants the tile state).
fn amx() -> Option<&'static gg_backends::KernelTable> {
    match Backend::Amx.table() {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("skipping the AMX hardware: {e}");
            None
        }
    }
}

#[test]
fn amx_matmuls_match_the_specs_bit_for_bit() {
    let Some(table) = amx() else { return };
    let scalar = Backend::Scalar.table().unwrap();
    let mut rng = XorShift(703);
    let team = gg_backends::Team::new(2).unwrap();
    for (dtype, _) in panel_types(false) {
        let (spec, ours) = (scalar.fast(dtype).unwrap(), table.fast(dtype).unwrap());
        integer_matmuls_match(spec, ("amx fast", ours), dtype, &mut rng, &team);
        integer_rows_do_not_depend_on_their_batch(("amx fast", ours), dtype, &mut rng, &team);
    }
    for (dtype, _) in panel_types(true) {
        let (spec, ours) = (scalar.int8(dtype).unwrap(), table.int8(dtype).unwrap());
        integer_matmuls_match(spec, ("amx int8", ours), dtype, &mut rng, &team);
        integer_rows_do_not_depend_on_their_batch(("amx int8", ours), dtype, &mut rng, &team);
    }
}

#[test]
fn amx_is_refused_with_the_reason_where_it_cannot_run() {
    match Backend::Amx.table() {
        Ok(_) => assert!(cpu::has(cpu::Feature::AmxTile) && cpu::has(cpu::Feature::AmxPermission)),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("amx"), "{msg}");
            eprintln!("refused as it should be: {msg}");
        }
    }
}
