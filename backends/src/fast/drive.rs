//! The fast kernels' shared drivers: quantizing activation rows (with a fused norm) over the
//! team, and the matmul drivers that hand a tier's panel dots one token tile and one panel at a
//! time. A tier enters as a [`FastTier`]; a weight type as its panels (`super::pack`).

use std::mem::MaybeUninit;

use super::pack::{self, PackedQ8, PANEL};
use super::qrows::{qrow_words, QRows, QTile, MAX_K, QBLOCK, TOKEN_TILE};
use crate::kernels::{zeroed_prefix, Activations, Par};
use crate::rows::{self, RowOps};
use crate::split::{for_static_chunks, OutPtr};
use crate::wtypes::WeightType;
use crate::wtypes::{PanelForm, HALVES, HALVES_OFFSET, OFFSET, SYMMETRIC, WIDE};

/// `out (rows, n) = x (rows, k) · W (n, k)ᵀ` over packed weights (plain: one group; GeGLU: two
/// groups, gate then up, `n` being the width of one). Quantizes `x` into memory it allocates:
/// for tests, benches and callers without a plan; a lowered program runs
/// [`QuantizeRowsFn`] into its arena and then a [`QMatMulFn`].
pub type PackedMatMulFn = fn(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par);

/// The same over activations already quantized ([`QRows`]).
pub type QMatMulFn = fn(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par);

/// Quantize `x`'s rows into `out` ([`qrow_words`] words per row, see [`QRows`]), each row first
/// RMS-normalized and scaled by `w` when `norm = Some((w, eps))` (the norm that feeds the matmul,
/// fused: the normalized row never goes to memory); block sums too when `with_sums`.
pub type QuantizeRowsFn =
    fn(x: Activations<'_>, norm: Option<(&[f32], f32)>, out: &mut [u32], with_sums: bool, par: Par);

/// Repack a weight for a tier's fast kernels, in `groups` row groups.
pub type PackFn = fn(w: gg_ops::WeightView<'_>, groups: usize) -> Result<PackedQ8, String>;

/// The fast kernels one tier runs for one weight type.
#[derive(Clone, Copy)]
pub struct FastKernels {
    /// The activations' integer type (`i16`, or `i8` for the int8 precision), for `dump`.
    pub act: &'static str,
    pub pack: PackFn,
    /// The tier's block quantizer ([`quantize_block`], exactly), for tests.
    pub quantize: fn(&[f32], &mut [i16]) -> f32,
    pub quantize_rows: QuantizeRowsFn,
    pub matmul: PackedMatMulFn,
    pub matmul_geglu: PackedMatMulFn,
    pub matmul_q: QMatMulFn,
    pub matmul_geglu_q: QMatMulFn,
    pub max_k: usize,
}

/// Row `x` normalized first when `norm` is given (into stack scratch), then `quantize`d into
/// `out`.
fn normed_then<R: RowOps>(
    x: &[f32],
    norm: Option<(&[f32], f32)>,
    out: &mut [u32],
    quantize: impl Fn(&[f32], &mut [u32]),
) {
    let mut normed_room = [MaybeUninit::<f32>::uninit(); MAX_K];
    let src = match norm {
        Some((w, eps)) => {
            let ops = R::get();
            let r = rows::rms_scale(ops, x, eps);
            let normed = zeroed_prefix(&mut normed_room, x.len());
            ops.scaled(normed, x, r, w);
            &*normed
        }
        None => x,
    };
    quantize(src, out)
}

/// Quantize one (already normalized) row into its [`qrow_words`] words, quants in pairs (see
/// [`QRows`]): what [`FastTier::write_row`] does unless a tier lays its rows out otherwise.
pub fn write_pairs<T: FastTier>(src: &[f32], out: &mut [u32], with_sums: bool) {
    let k = src.len();
    let (q, rest) = out.split_at_mut(k / 2);
    let (d, sums) = rest.split_at_mut(k / QBLOCK);
    let q: &mut [i16] = bytemuck::cast_slice_mut(q);
    let d: &mut [f32] = bytemuck::cast_slice_mut(d);
    T::quantize_row(src, q, d);
    if with_sums {
        let nb = k / QBLOCK;
        let (block, halves) = sums[..3 * nb].split_at_mut(nb);
        let (half0, half1) = halves.split_at_mut(nb);
        for (b, (qb, &db)) in q.chunks_exact(QBLOCK).zip(d.iter()).enumerate() {
            let isum = |qs: &[i16]| qs.iter().map(|&v| v as i32).sum::<i32>();
            let (h0, h1) = (isum(&qb[..QBLOCK / 2]), isum(&qb[QBLOCK / 2..]));
            block[b] = ((h0 + h1) as f32 * db).to_bits();
            half0[b] = (h0 as f32 * db).to_bits();
            half1[b] = (h1 as f32 * db).to_bits();
        }
    }
}

/// [`QuantizeRowsFn`] for a tier and the weights of type `W` it feeds: rows split over the team,
/// each written as the tier's kernels for `W`'s form read it ([`FastTier::write_row`]).
pub fn quantize_rows<T: FastTier, W: WeightType>(
    x: Activations<'_>,
    norm: Option<(&[f32], f32)>,
    out: &mut [u32],
    with_sums: bool,
    par: Par,
) {
    let form = W::PANEL_FORM.expect("fast kernels only for types with a panel form");
    quantize_rows_with::<T::Rows>(x, norm, out, par, |src, row| T::write_row(src, row, with_sums, form))
}

/// Rows of `x` (normalized first when `norm` is given) quantized by `row` into [`qrow_words`]
/// words each, rows split over the team.
pub(super) fn quantize_rows_with<R: RowOps>(
    x: Activations<'_>,
    norm: Option<(&[f32], f32)>,
    out: &mut [u32],
    par: Par,
    row: impl Fn(&[f32], &mut [u32]) + Sync,
) {
    let (k, w) = (x.k, qrow_words(x.k));
    assert!(
        k <= MAX_K && k.is_multiple_of(QBLOCK) && out.len() >= x.rows * w,
        "quantizing {} rows of {k} into {} words",
        x.rows,
        out.len()
    );
    if let Some((nw, _)) = norm {
        assert_eq!(nw.len(), k, "a norm weight per column");
    }
    rows::for_row_units(&mut out[..x.rows * w], w, par, |mine, r0| {
        for (i, out) in mine.chunks_exact_mut(w).enumerate() {
            normed_then::<R>(x.row(r0 + i), norm, out, &row);
        }
    });
}

/// What a tier provides for the fast kernels; the drivers below are shared.
pub trait FastTier: Sized + Send + Sync + 'static {
    /// The tier's row primitives (the norm fused into the quantization).
    type Rows: RowOps;
    /// [`quantize_block`], exactly.
    fn quantize(x: &[f32], q: &mut [i16]) -> f32;
    /// [`quantize_row`], exactly (one feature check per row, not per block).
    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]);
    /// How the tier's panels arrange the quants of a form (pairs, for the multiply-add kernels).
    /// Tokens per tile of the driver's loop (at most [`TOKEN_TILE`]): a tile's activation rows
    /// are read once per panel.
    const TOKENS: usize = TOKEN_TILE;
    fn layout(_form: PanelForm) -> pack::Layout {
        pack::Layout::Pairs
    }
    /// Repack a weight of type `W` for the tier's dots (in [`FastTier::layout`]).
    fn pack<W: WeightType>(w: gg_ops::WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
        pack::pack::<W>(w, groups)
    }
    /// Write one (already normalized) row's quantization into its [`qrow_words`] words, as the
    /// tier's dots for weights of `form` read them (by default quants in pairs: [`write_pairs`]).
    fn write_row(src: &[f32], out: &mut [u32], with_sums: bool, _form: PanelForm) {
        write_pairs::<Self>(src, out, with_sums)
    }
    /// For tokens `0..tile.tokens`: the 16 rows' values of one panel in the form `FORM`
    /// ([`pack::SYMMETRIC`], [`pack::OFFSET`], [`pack::HALVES`], [`pack::WIDE`]), computed as
    /// [`scalar::panel_dots`] does (the same integer sums, the same f32 operations in order).
    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]);
    /// `h = gelu_tanh(g) ⊙ u`.
    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]);
}

fn check(x: &QRows<'_>, w: &PackedQ8, out: &[f32], n: usize) {
    assert!(
        x.k() == w.cols() && n == w.rows() && out.len() >= x.rows() * n && x.with_sums() == w.form().has_offsets(),
        "fast matmul operands: x ({}, {}), packed ({} × {}, {}), n {n}, out {}",
        x.rows(),
        x.k(),
        w.groups(),
        w.rows(),
        w.cols(),
        out.len()
    );
}

/// Store panel `p`'s values of tokens `t0..t0 + tokens` into `out (rows, n)`.
fn store(ptr: OutPtr, vals: &[[f32; PANEL]; TOKEN_TILE], t0: usize, tokens: usize, p: usize, n: usize) {
    let width = PANEL.min(n - p * PANEL);
    for (i, v) in vals.iter().take(tokens).enumerate() {
        // SAFETY: token t0 + i < rows and columns p·16 .. p·16 + width < n are inside `out`
        // (checked by the caller); panel p's columns belong to the calling chunk only.
        unsafe {
            let dst = ptr.get().add((t0 + i) * n + p * PANEL);
            if width == PANEL {
                // A whole panel: a fixed-size copy the compiler inlines (a call per 64 bytes
                // showed as 4 % of a long text's time).
                (dst as *mut [f32; PANEL]).write_unaligned(*v);
            } else {
                std::ptr::copy_nonoverlapping(v.as_ptr(), dst, width);
            }
        }
    }
}

/// The driver both matmuls share: threads take one chunk of panels each, and for each tile of
/// `tokens` (≤ [`TOKEN_TILE`]) tokens have `panel(tile, p, out)` write panel `p`'s 16 columns
/// of the tile's tokens, which are then stored.
pub(super) fn drive(
    x: &QRows<'_>,
    w: &PackedQ8,
    out: &mut [f32],
    (n, tokens): (usize, usize),
    par: Par,
    panel: impl Fn(&QTile, usize, &mut [[f32; PANEL]; TOKEN_TILE]) + Sync,
) {
    check(x, w, out, n);
    assert!((1..=TOKEN_TILE).contains(&tokens), "token tiles of {tokens}");
    let ptr = OutPtr::new(out);
    let work = |p0: usize, p1: usize| {
        let mut vals = [[0f32; PANEL]; TOKEN_TILE];
        for t0 in (0..x.rows()).step_by(tokens) {
            let t1 = (t0 + tokens).min(x.rows());
            let tile = x.tile(t0, t1);
            for p in p0..p1 {
                panel(&tile, p, &mut vals);
                store(ptr, &vals, t0, t1 - t0, p, n);
            }
        }
    };
    for_static_chunks(w.panels(), par, work);
}

type DotsFn = fn(&QTile, &[u8], &mut [[f32; PANEL]; TOKEN_TILE]);

/// A tier's dots for the form of `w`'s panels.
fn dots_for<T: FastTier>(w: &PackedQ8) -> DotsFn {
    assert_eq!(
        w.layout(),
        T::layout(w.form()),
        "a panel packed for this tier's fast kernels"
    );
    match w.form() {
        PanelForm::Symmetric => T::dots::<SYMMETRIC>,
        PanelForm::Offset => T::dots::<OFFSET>,
        PanelForm::Halves => T::dots::<HALVES>,
        PanelForm::HalvesOffset => T::dots::<HALVES_OFFSET>,
        PanelForm::Wide => T::dots::<WIDE>,
    }
}

/// The plain matmul over quantized rows.
pub fn matmul_q<T: FastTier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    assert_eq!(w.groups(), 1, "a plain matmul's weight is one group");
    let dots = dots_for::<T>(w);
    drive(x, w, out, (n, T::TOKENS), par, |tile, p, vals| {
        dots(tile, w.panel(0, p), vals)
    });
}

/// The GeGLU matmul over quantized rows: `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)`, gate
/// and up panels of the same columns side by side.
pub fn matmul_geglu_q<T: FastTier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    assert_eq!(w.groups(), 2, "a GeGLU weight is two groups (gate, up)");
    drive_geglu(x, w, out, (f, T::TOKENS), par, dots_for::<T>(w), T::geglu);
}

/// [`drive`] for a GeGLU weight: each panel's gate and up values by `dots`, combined by
/// `geglu`.
pub(super) fn drive_geglu(
    x: &QRows<'_>,
    w: &PackedQ8,
    out: &mut [f32],
    (f, tokens): (usize, usize),
    par: Par,
    dots: DotsFn,
    geglu: fn(&[f32], &[f32], &mut [f32]),
) {
    drive(x, w, out, (f, tokens), par, |tile, p, h| {
        let mut gate = [[0f32; PANEL]; TOKEN_TILE];
        let mut up = [[0f32; PANEL]; TOKEN_TILE];
        dots(tile, w.panel(0, p), &mut gate);
        dots(tile, w.panel(1, p), &mut up);
        let len = tile.tokens * PANEL;
        geglu(
            &gate.as_flattened()[..len],
            &up.as_flattened()[..len],
            &mut h.as_flattened_mut()[..len],
        );
    });
}

/// `x` quantized into memory allocated here, then `f` (see [`PackedMatMulFn`]).
pub(super) fn quantized_then(
    x: Activations<'_>,
    w: &PackedQ8,
    par: Par,
    quantize: QuantizeRowsFn,
    f: impl FnOnce(&QRows<'_>),
) {
    let with_sums = w.form().has_offsets();
    let mut words = vec![0u32; x.rows * qrow_words(x.k)];
    quantize(x, None, &mut words, with_sums, par);
    f(&QRows::new(&words, x.k, x.rows, with_sums))
}

/// [`matmul_q`] from f32 activations (allocates; see [`PackedMatMulFn`]).
pub fn matmul<T: FastTier, W: WeightType>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows::<T, W>, |q| matmul_q::<T>(q, w, out, n, par))
}

/// [`matmul_geglu_q`] from f32 activations (allocates; see [`PackedMatMulFn`]).
pub fn matmul_geglu<T: FastTier, W: WeightType>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows::<T, W>, |q| {
        matmul_geglu_q::<T>(q, w, out, f, par)
    })
}

/// A tier's fast kernels for weights of type `W`, if the type has a panel form.
pub const fn kernels<T: FastTier, W: WeightType>() -> Option<FastKernels> {
    if W::PANEL_FORM.is_none() {
        return None;
    }
    Some(FastKernels {
        act: "i16",
        pack: T::pack::<W>,
        quantize: T::quantize,
        quantize_rows: quantize_rows::<T, W>,
        matmul: matmul::<T, W>,
        matmul_geglu: matmul_geglu::<T, W>,
        matmul_q: matmul_q::<T>,
        matmul_geglu_q: matmul_geglu_q::<T>,
        max_k: MAX_K,
    })
}

#[cfg(test)]
mod tests {
    use super::super::pack::{pack, PANEL_BLOCK_BYTES};
    use super::super::qrows::quantize_block;
    use super::super::scalar;
    use super::*;
    use gg_ops::testing::XorShift;
    use gg_ops::{BlockQ8_0, WeightView};

    fn q8(rows: usize, cols: usize, vals: &[f32]) -> Vec<BlockQ8_0> {
        assert_eq!(vals.len(), rows * cols);
        vals.chunks_exact(QBLOCK)
            .map(|c| BlockQ8_0::quantize(c.try_into().unwrap()))
            .collect()
    }

    /// The definition, straight from the file's blocks: per block, the integer sum of
    /// `q_w · q_x`, then `acc += sum · (d_w · d_x)`.
    fn reference(x: &[f32], k: usize, blocks: &[BlockQ8_0], n: usize) -> Vec<f32> {
        let nb = k / QBLOCK;
        let rows = x.len() / k;
        let mut out = vec![0f32; rows * n];
        for t in 0..rows {
            let mut qx = vec![0i16; k];
            let dx: Vec<f32> = (0..nb)
                .map(|b| quantize_block(&x[t * k + b * QBLOCK..][..QBLOCK], &mut qx[b * QBLOCK..][..QBLOCK]))
                .collect();
            for j in 0..n {
                let mut acc = 0f32;
                for b in 0..nb {
                    let wb = &blocks[j * nb + b];
                    let sum: i32 = (0..QBLOCK).map(|i| wb.qs[i] as i32 * qx[b * QBLOCK + i] as i32).sum();
                    acc += sum as f32 * (wb.d.to_f32() * dx[b]);
                }
                out[t * n + j] = acc;
            }
        }
        out
    }

    #[test]
    fn scalar_fast_matmul_is_the_definition() {
        let mut rng = XorShift(3);
        for (rows, k, n) in [(1, 32, 1), (5, 64, 16), (17, 96, 23), (33, 128, 40)] {
            let x = rng.vec(rows * k);
            let blocks = q8(n, k, &rng.vec(n * k));
            let bytes: &[u8] = bytemuck::cast_slice(&blocks);
            let w = WeightView::new(gg_ops::DType::Q8_0, n, k, bytes).unwrap();
            let packed = pack::<crate::wtypes::Q8_0>(w, 1).unwrap();
            let mut out = vec![f32::NAN; rows * n];
            matmul::<scalar::Scalar, crate::wtypes::Q8_0>(
                Activations::dense(&x, rows, k),
                &packed,
                &mut out,
                n,
                Par::SERIAL,
            );
            assert_eq!(out, reference(&x, k, &blocks, n), "rows {rows} k {k} n {n}");
        }
    }

    #[test]
    fn packing_keeps_every_quant_and_scale() {
        let mut rng = XorShift(4);
        let (rows, k) = (37, 96);
        let blocks = q8(rows, k, &rng.vec(rows * k));
        let w = WeightView::new(gg_ops::DType::Q8_0, rows, k, bytemuck::cast_slice(&blocks)).unwrap();
        let p = pack::<crate::wtypes::Q8_0>(w, 1).unwrap();
        assert_eq!((p.panels(), p.blocks()), (3, 3));
        for r in 0..48 {
            for b in 0..3 {
                let blk = &p.panel(0, r / PANEL)[b * PANEL_BLOCK_BYTES..][..PANEL_BLOCK_BYTES];
                let sc = pack::scales(blk)[r % PANEL];
                for c in 0..QBLOCK {
                    let q = pack::quant_at(blk, r % PANEL, c);
                    if r < rows {
                        assert_eq!(q, blocks[r * 3 + b].qs[c]);
                    } else {
                        assert_eq!(q, 0, "padding rows are zeros");
                    }
                }
                assert_eq!(sc, if r < rows { blocks[r * 3 + b].d.to_f32() } else { 0.0 });
            }
        }
        assert!(
            pack::<crate::wtypes::Q8_0>(w, 2).is_err(),
            "37 rows do not split in two groups"
        );
    }

    #[test]
    fn quantization_error_is_within_half_a_step() {
        let mut rng = XorShift(5);
        for _ in 0..100 {
            let x = rng.vec(QBLOCK);
            let mut q = [0i16; QBLOCK];
            let d = quantize_block(&x, &mut q);
            for (v, &qi) in x.iter().zip(&q) {
                // Half a step, plus the rounding of `x · (1/d)` (a few ulps of x).
                let err = (*v as f64 - qi as f64 * d as f64).abs();
                assert!(
                    err <= 0.5 * d as f64 + 4.0 * f32::EPSILON as f64 * v.abs() as f64,
                    "{v} vs {qi}·{d}"
                );
            }
        }
        let mut q = [0i16; QBLOCK];
        let mut x = [1f32; QBLOCK];
        x[4] = f32::NAN;
        assert!(quantize_block(&x, &mut q).is_nan() && q == [0; QBLOCK]);
    }
}
