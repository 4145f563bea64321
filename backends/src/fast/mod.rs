//! The `fast` precision: integer dot products over quantized weight blocks.
//!
//! Activations are quantized per block of 32 values to 16-bit integers (scale `amax / 32767`),
//! weights keep the file's quants (8 bits or fewer), repacked once at load into panels of 16
//! rows ([`PackedQ8`]) in one of three lossless forms ([`pack::PanelForm`]). A block's 32
//! products are summed exactly in 32-bit integers; the sum is then scaled by `d_w · d_x` and
//! added to the row's f32 accumulator, block after block (per 16-value half for Q6_K's form;
//! and for the offset types `o_w · Σx` is added too, `Σx` being the block's quantized sum). So
//! every type computes its file's exact weights times the 16-bit activations. Every tier
//! computes exactly these operations in this order, so the result of a text depends neither on
//! the tier's tile sizes, its batch neighbours nor the thread count, and the SIMD tiers agree
//! with the scalar specification bit for bit.
//!
//! Why 16-bit activations: llama.cpp quantizes activations to 8 bits, which moves its vectors
//! to cosine 0.998 of the exact answer on the golden texts. 16-bit blocks keep the error
//! ~250× smaller, and on x86 a 16-bit × 16-bit `madd`/`vpdpwssd` covers as many products per
//! instruction as the 8-bit forms do.

pub mod int8;
pub mod pack;
pub mod scalar;

pub use pack::{pack, PackedQ8, PanelForm, HALVES, OFFSET, PANEL, PANEL_BLOCK_BYTES, SYMMETRIC, WIDE};

use std::mem::MaybeUninit;

use crate::kernels::{zeroed_prefix, Activations, Par};
use crate::rows::{self, RowOps};
use crate::split::{for_static_chunks, OutPtr};
use crate::wtypes::WeightType;

/// Elements per quantization block (Q8_0's).
pub const QBLOCK: usize = 32;
/// Largest 16-bit activation magnitude.
pub const QMAX: f32 = 32767.0;
/// Tokens a driver hands a tier's panel dots at once: every one of them meets a panel while
/// it is in L1. A short query is one tile, so each weight byte comes from memory once per
/// pass (with 16, a 17-token text streamed every weight twice).
pub const TOKEN_TILE: usize = 64;
/// Longest row the fast kernels take.
pub const MAX_K: usize = 4096;

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
    /// `tier.kernel<type>`, for `dump` and errors.
    pub name: &'static str,
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

/// The quantization of one block, the specification: `d = amax / 32767`, `q = round(x / d)`
/// computed as `x · (32767 / amax)` rounded half to even (what `cvtps2dq` does), clamped.
/// Returns `d`; a block holding a NaN or an infinity gets `d = NaN` (and zero quants), so the
/// outputs it feeds are NaN, as with f32 arithmetic, never a finite wrong value.
#[inline]
pub fn quantize_block(x: &[f32], q: &mut [i16]) -> f32 {
    debug_assert!(x.len() == QBLOCK && q.len() == QBLOCK);
    let Some(amax) = finite_amax(x) else {
        q.fill(0);
        return f32::NAN;
    };
    let (d, id) = block_scales(amax);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_clamp(v * id);
    }
    d
}

/// A block's largest magnitude, or `None` when it holds a NaN or an infinity (the block's
/// scale is then NaN, in both integer precisions).
#[inline]
pub fn finite_amax(x: &[f32]) -> Option<f32> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(x.iter().fold(0f32, |m, v| m.max(v.abs())))
}

/// `(d, 1/d)` for a block's largest magnitude (zeros for an all-zero block); every tier
/// computes them with this function.
#[inline]
pub fn block_scales(amax: f32) -> (f32, f32) {
    block_scales_for(amax, QMAX)
}

/// `(d, 1/d)` for quants of at most `qmax` (`d = amax / qmax`), zeros for an all-zero block:
/// the rule of both integer precisions.
#[inline]
pub fn block_scales_for(amax: f32, qmax: f32) -> (f32, f32) {
    if amax == 0.0 {
        (0.0, 0.0)
    } else {
        (amax / qmax, qmax / amax)
    }
}

#[inline]
fn round_clamp(v: f32) -> i16 {
    v.round_ties_even().clamp(-QMAX, QMAX) as i16
}

/// 32-bit words one quantized row of `k` values takes in [`QRows`].
pub const fn qrow_words(k: usize) -> usize {
    k / 2 + 2 * (k / QBLOCK)
}

/// Activations quantized for the fast kernels, one row per token, each row [`qrow_words`]
/// 32-bit words: the `k` 16-bit quants (values `2p` and `2p + 1` in word `p`, low half first —
/// the pair a `vpdpwssd`/`madd` broadcasts), then the `k / 32` block scales `d` (f32), then the
/// `k / 32` block sums `Σx = (Σq as f32) · d` (f32; written only for the offset form, which
/// alone reads them). Block `b` of a token is one 64-byte run of its row, so a register tile
/// of tokens reads one cache line per token and block.
#[derive(Clone, Copy)]
pub struct QRows<'a> {
    words: &'a [u32],
    k: usize,
    rows: usize,
    with_sums: bool,
}

impl<'a> QRows<'a> {
    /// `rows` quantized rows of `k` values at the start of `words`.
    pub fn new(words: &'a [u32], k: usize, rows: usize, with_sums: bool) -> QRows<'a> {
        assert!(
            k <= MAX_K && k.is_multiple_of(QBLOCK) && words.len() >= rows * qrow_words(k),
            "{rows} quantized rows of {k} values in {} words",
            words.len()
        );
        QRows {
            words,
            k,
            rows,
            with_sums,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Tokens `t0..t1` (at most [`TOKEN_TILE`]) as a tile for a tier's panel dots.
    pub fn tile(&self, t0: usize, t1: usize) -> QTile<'a> {
        assert!(t0 < t1 && t1 <= self.rows && t1 - t0 <= TOKEN_TILE);
        let w = qrow_words(self.k);
        QTile {
            words: &self.words[t0 * w..t1 * w],
            with_sums: self.with_sums,
            k: self.k,
            tokens: t1 - t0,
        }
    }
}

/// Up to [`TOKEN_TILE`] consecutive rows of a [`QRows`]: what a tier's panel dots take.
pub struct QTile<'a> {
    words: &'a [u32],
    with_sums: bool,
    pub k: usize,
    pub tokens: usize,
}

impl QTile<'_> {
    /// Token `t`'s values `2p` and `2p + 1`.
    #[inline]
    pub fn pair(&self, t: usize, p: usize) -> (i16, i16) {
        assert!(t < self.tokens && p < self.k / 2, "pair ({t}, {p}) outside the tile");
        let v = self.words[t * qrow_words(self.k) + p];
        (v as i16, (v >> 16) as i16)
    }

    /// Token `t`'s scale of block `b`.
    #[inline]
    pub fn scale(&self, t: usize, b: usize) -> f32 {
        assert!(
            t < self.tokens && b < self.k / QBLOCK,
            "scale ({t}, {b}) outside the tile"
        );
        f32::from_bits(self.words[t * qrow_words(self.k) + self.k / 2 + b])
    }

    /// Token `t`'s quantized sum of block `b`: `(Σ q as f32) · d`, the sum of the values the
    /// quants stand for (the integer sum is exact; one rounding).
    #[inline]
    pub fn sum(&self, t: usize, b: usize) -> f32 {
        assert!(
            self.with_sums && t < self.tokens && b < self.k / QBLOCK,
            "sum ({t}, {b}) outside the tile, or a tile without sums"
        );
        f32::from_bits(self.words[t * qrow_words(self.k) + self.k / 2 + self.k / QBLOCK + b])
    }

    /// Token `t`'s 16 pairs of block `b`, for a tier's register tile (pair `i` at offset `i`).
    #[inline]
    pub fn block_pairs(&self, b: usize, t: usize) -> *const i32 {
        assert!(
            t < self.tokens && b < self.k / QBLOCK,
            "block ({t}, {b}) outside the tile"
        );
        self.words[t * qrow_words(self.k) + b * QBLOCK / 2..].as_ptr() as *const i32
    }
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

/// Quantize one (already normalized) row into its [`qrow_words`] words.
fn quantize_row_into<T: FastTier>(src: &[f32], out: &mut [u32], with_sums: bool) {
    let k = src.len();
    let (q, rest) = out.split_at_mut(k / 2);
    let (d, sums) = rest.split_at_mut(k / QBLOCK);
    let q: &mut [i16] = bytemuck::cast_slice_mut(q);
    let d: &mut [f32] = bytemuck::cast_slice_mut(d);
    T::quantize_row(src, q, d);
    if with_sums {
        for ((s, qb), &db) in sums[..k / QBLOCK].iter_mut().zip(q.chunks_exact(QBLOCK)).zip(d.iter()) {
            let isum: i32 = qb.iter().map(|&v| v as i32).sum();
            *s = (isum as f32 * db).to_bits();
        }
    }
}

/// [`QuantizeRowsFn`] for a tier: rows split over the team.
pub fn quantize_rows<T: FastTier>(
    x: Activations<'_>,
    norm: Option<(&[f32], f32)>,
    out: &mut [u32],
    with_sums: bool,
    par: Par,
) {
    quantize_rows_with::<T::Rows>(x, norm, out, par, |src, row| {
        quantize_row_into::<T>(src, row, with_sums)
    })
}

/// Rows of `x` (normalized first when `norm` is given) quantized by `row` into [`qrow_words`]
/// words each, rows split over the team.
fn quantize_rows_with<R: RowOps>(
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

/// [`quantize_block`] over a row: `q` gets `x.len()` values, `d` one scale per block.
pub fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
    quantize_blocks(x, q, d, quantize_block)
}

/// A row, block by block, with a tier's block quantizer (each call gets exactly one block of
/// [`QBLOCK`] values and its quants).
pub fn quantize_blocks<Q>(x: &[f32], q: &mut [Q], d: &mut [f32], mut block: impl FnMut(&[f32], &mut [Q]) -> f32) {
    assert!(
        x.len() == q.len() && d.len() * QBLOCK == x.len(),
        "a row of whole blocks"
    );
    for ((xb, qb), db) in x.chunks_exact(QBLOCK).zip(q.chunks_exact_mut(QBLOCK)).zip(d.iter_mut()) {
        *db = block(xb, qb);
    }
}

/// What a tier provides for the fast kernels; the drivers below are shared.
pub trait FastTier: Send + Sync + 'static {
    /// The tier's row primitives (the norm fused into the quantization).
    type Rows: RowOps;
    /// [`quantize_block`], exactly.
    fn quantize(x: &[f32], q: &mut [i16]) -> f32;
    /// [`quantize_row`], exactly (one feature check per row, not per block).
    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]);
    /// For tokens `0..tile.tokens`: the 16 rows' values of one panel in the form `FORM`
    /// ([`pack::SYMMETRIC`], [`pack::OFFSET`], [`pack::HALVES`], [`pack::WIDE`]), computed as
    /// [`scalar::panel_dots`] does (the same integer sums, the same f32 operations in order).
    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]);
    /// `h = gelu_tanh(g) ⊙ u`.
    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]);
}

fn check(x: &QRows<'_>, w: &PackedQ8, out: &[f32], n: usize) {
    assert!(
        x.k == w.cols() && n == w.rows() && out.len() >= x.rows * n && x.with_sums == (w.form() == PanelForm::Offset),
        "fast matmul operands: x ({}, {}), packed ({} × {}, {}), n {n}, out {}",
        x.rows,
        x.k,
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

/// The driver both matmuls share: threads take one chunk of panels each, and have
/// `panel(tile, p, out)` write panel `p`'s 16 columns of every token of a tile, which are then
/// stored.
fn drive(
    x: &QRows<'_>,
    w: &PackedQ8,
    out: &mut [f32],
    n: usize,
    par: Par,
    panel: impl Fn(&QTile, usize, &mut [[f32; PANEL]; TOKEN_TILE]) + Sync,
) {
    check(x, w, out, n);
    let ptr = OutPtr::new(out);
    let work = |p0: usize, p1: usize| {
        let mut vals = [[0f32; PANEL]; TOKEN_TILE];
        for t0 in (0..x.rows).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(x.rows);
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
    assert_eq!(w.layout(), pack::Layout::Pairs, "fast kernels over pairs panels");
    match w.form() {
        PanelForm::Symmetric => T::dots::<SYMMETRIC>,
        PanelForm::Offset => T::dots::<OFFSET>,
        PanelForm::Halves => T::dots::<HALVES>,
        PanelForm::Wide => T::dots::<WIDE>,
    }
}

/// The plain matmul over quantized rows.
pub fn matmul_q<T: FastTier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    assert_eq!(w.groups(), 1, "a plain matmul's weight is one group");
    let dots = dots_for::<T>(w);
    drive(x, w, out, n, par, |tile, p, vals| dots(tile, w.panel(0, p), vals));
}

/// The GeGLU matmul over quantized rows: `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)`, gate
/// and up panels of the same columns side by side.
pub fn matmul_geglu_q<T: FastTier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    assert_eq!(w.groups(), 2, "a GeGLU weight is two groups (gate, up)");
    drive_geglu(x, w, out, f, par, dots_for::<T>(w), T::geglu);
}

/// [`drive`] for a GeGLU weight: each panel's gate and up values by `dots`, combined by
/// `geglu`.
fn drive_geglu(
    x: &QRows<'_>,
    w: &PackedQ8,
    out: &mut [f32],
    f: usize,
    par: Par,
    dots: DotsFn,
    geglu: fn(&[f32], &[f32], &mut [f32]),
) {
    drive(x, w, out, f, par, |tile, p, h| {
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
fn quantized_then(x: Activations<'_>, w: &PackedQ8, par: Par, quantize: QuantizeRowsFn, f: impl FnOnce(&QRows<'_>)) {
    let with_sums = w.form() == PanelForm::Offset;
    let mut words = vec![0u32; x.rows * qrow_words(x.k)];
    quantize(x, None, &mut words, with_sums, par);
    f(&QRows::new(&words, x.k, x.rows, with_sums))
}

/// [`matmul_q`] from f32 activations (allocates; see [`PackedMatMulFn`]).
pub fn matmul<T: FastTier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows::<T>, |q| matmul_q::<T>(q, w, out, n, par))
}

/// [`matmul_geglu_q`] from f32 activations (allocates; see [`PackedMatMulFn`]).
pub fn matmul_geglu<T: FastTier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows::<T>, |q| {
        matmul_geglu_q::<T>(q, w, out, f, par)
    })
}

/// A tier's fast kernels for weights of type `W` (which must have a panel form).
pub const fn kernels<T: FastTier, W: WeightType>(name: &'static str) -> FastKernels {
    assert!(W::PANEL_FORM.is_some(), "fast kernels for a type without a panel form");
    FastKernels {
        name,
        act: "i16",
        pack: pack::pack::<W>,
        quantize: T::quantize,
        quantize_rows: quantize_rows::<T>,
        matmul: matmul::<T>,
        matmul_geglu: matmul_geglu::<T>,
        matmul_q: matmul_q::<T>,
        matmul_geglu_q: matmul_geglu_q::<T>,
        max_k: MAX_K,
    }
}

/// A tier's `fast_kernels` list: every quantized type, each entry named `<prefix>.<type>`.
/// Adding a quantized type to the fast precision is one line here.
macro_rules! fast_kernel_list {
    ($tier:ty, $prefix:literal) => {
        &[
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q8_0, "q8_0"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q4_0, "q4_0"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q5_0, "q5_0"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q4_1, "q4_1"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q5_1, "q5_1"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q4K, "q4_k"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q5K, "q5_k"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, Q6K, "q6_k"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, F16, "f16"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, BF16, "bf16"),
            $crate::fast::fast_kernel_list!(@entry $tier, $prefix, F32, "f32"),
        ]
    };
    (@entry $tier:ty, $prefix:literal, BF16, $name:literal) => {
        (
            gg_ops::DType::BF16,
            $crate::fast::kernels::<$tier, $crate::wtypes::Bf16>(concat!($prefix, ".", $name)),
        )
    };
    (@entry $tier:ty, $prefix:literal, $ty:ident, $name:literal) => {
        (
            gg_ops::DType::$ty,
            $crate::fast::kernels::<$tier, $crate::wtypes::$ty>(concat!($prefix, ".", $name)),
        )
    };
}
pub(crate) use fast_kernel_list;

#[cfg(test)]
mod tests {
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
            matmul::<scalar::Scalar>(Activations::dense(&x, rows, k), &packed, &mut out, n, Par::SERIAL);
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
