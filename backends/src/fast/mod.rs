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

pub mod pack;
pub mod scalar;

pub use pack::{pack, PackedQ8, PanelForm, HALVES, OFFSET, PANEL, PANEL_BLOCK_BYTES, SYMMETRIC};

use crate::kernels::{Activations, Par};
use crate::split::{for_static_chunks, OutPtr};
use crate::wtypes::WeightType;

use std::mem::MaybeUninit;

/// Elements per quantization block (Q8_0's).
pub const QBLOCK: usize = 32;
/// Largest 16-bit activation magnitude.
pub const QMAX: f32 = 32767.0;
/// Tokens quantized at once (the stack tile every thread keeps).
pub const TOKEN_TILE: usize = 16;
/// Longest row the fast kernels take.
pub const MAX_K: usize = 4096;

/// `out (rows, n) = x (rows, k) · W (n, k)ᵀ` over packed weights (plain: one group; GeGLU: two
/// groups, gate then up, `n` being the width of one).
pub type PackedMatMulFn = fn(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par);

/// Repack a weight for a tier's fast kernels, in `groups` row groups.
pub type PackFn = fn(w: gg_ops::WeightView<'_>, groups: usize) -> Result<PackedQ8, String>;

/// The fast kernels one tier runs for one weight type.
#[derive(Clone, Copy)]
pub struct FastKernels {
    /// `tier.kernel<type>`, for `dump` and errors.
    pub name: &'static str,
    pub pack: PackFn,
    /// The tier's block quantizer ([`quantize_block`], exactly), for tests.
    pub quantize: fn(&[f32], &mut [i16]) -> f32,
    pub matmul: PackedMatMulFn,
    pub matmul_geglu: PackedMatMulFn,
    pub max_k: usize,
}

/// The quantization of one block, the specification: `d = amax / 32767`, `q = round(x / d)`
/// computed as `x · (32767 / amax)` rounded half to even (what `cvtps2dq` does), clamped.
/// Returns `d`; a block holding a NaN or an infinity gets `d = NaN` (and zero quants), so the
/// outputs it feeds are NaN, as with f32 arithmetic, never a finite wrong value.
#[inline]
pub fn quantize_block(x: &[f32], q: &mut [i16]) -> f32 {
    debug_assert!(x.len() == QBLOCK && q.len() == QBLOCK);
    if x.iter().any(|v| !v.is_finite()) {
        q.fill(0);
        return f32::NAN;
    }
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (d, id) = block_scales(amax);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_clamp(v * id);
    }
    d
}

/// `(d, 1/d)` for a block's largest magnitude (zeros for an all-zero block); every tier
/// computes them with this function.
#[inline]
pub fn block_scales(amax: f32) -> (f32, f32) {
    if amax == 0.0 {
        (0.0, 0.0)
    } else {
        (amax / QMAX, QMAX / amax)
    }
}

#[inline]
fn round_clamp(v: f32) -> i16 {
    v.round_ties_even().clamp(-QMAX, QMAX) as i16
}

/// The quantized activations of up to [`TOKEN_TILE`] tokens, on the stack of the thread
/// that uses them, laid out for the kernels: value pairs `(2p, 2p + 1)` of every token side by
/// side (`pairs[p · TOKEN_TILE + t]`, two i16 in one i32), so a register tile broadcasts
/// token `t`'s pair from a fixed offset; block scales likewise (`d[b · TOKEN_TILE + t]`), and
/// block sums `Σx = (Σq as f32) · d`, made only for the offset form (`sums[b · TOKEN_TILE + t]`).
///
/// The arrays start uninitialized (zeroing 136 KB per kernel call cost more than the
/// quantization itself); [`QTile::fill`] writes every entry of tokens `0..tokens`, and only
/// those are read.
pub struct QTile {
    pairs: [MaybeUninit<i32>; TOKEN_TILE * MAX_K / 2],
    d: [MaybeUninit<f32>; TOKEN_TILE * MAX_K / QBLOCK],
    sums: [MaybeUninit<f32>; TOKEN_TILE * MAX_K / QBLOCK],
    /// Whether [`QTile::fill`] writes the block sums (only the offset form reads them).
    with_sums: bool,
    pub k: usize,
    pub tokens: usize,
}

impl QTile {
    /// A tile for rows of `k` values, keeping block sums when `with_sums`.
    pub fn new(k: usize, with_sums: bool) -> QTile {
        assert!(
            k <= MAX_K && k.is_multiple_of(QBLOCK),
            "fast kernels take k ≤ {MAX_K} in blocks of {QBLOCK}, got {k}"
        );
        QTile {
            pairs: [MaybeUninit::uninit(); TOKEN_TILE * MAX_K / 2],
            d: [MaybeUninit::uninit(); TOKEN_TILE * MAX_K / QBLOCK],
            sums: [MaybeUninit::uninit(); TOKEN_TILE * MAX_K / QBLOCK],
            with_sums,
            k,
            tokens: 0,
        }
    }

    /// Token `t`'s values `2p` and `2p + 1`.
    #[inline]
    pub fn pair(&self, t: usize, p: usize) -> (i16, i16) {
        assert!(
            t < self.tokens && p < self.k / 2,
            "pair ({t}, {p}) outside the filled tile"
        );
        // SAFETY: `fill` wrote every pair of tokens 0..tokens (checked above).
        let v = unsafe { self.pairs[p * TOKEN_TILE + t].assume_init() };
        (v as i16, (v >> 16) as i16)
    }

    /// Token `t`'s scale of block `b`.
    #[inline]
    pub fn scale(&self, t: usize, b: usize) -> f32 {
        assert!(
            t < self.tokens && b < self.k / QBLOCK,
            "scale ({t}, {b}) outside the filled tile"
        );
        // SAFETY: `fill` wrote every scale of tokens 0..tokens (checked above).
        unsafe { self.d[b * TOKEN_TILE + t].assume_init() }
    }

    /// Token `t`'s quantized sum of block `b`: `(Σ q as f32) · d`, the sum of the values the
    /// quants stand for (the integer sum is exact; one rounding).
    #[inline]
    pub fn sum(&self, t: usize, b: usize) -> f32 {
        assert!(
            self.with_sums && t < self.tokens && b < self.k / QBLOCK,
            "sum ({t}, {b}) outside the filled tile, or a tile without sums"
        );
        // SAFETY: `fill` wrote every sum of tokens 0..tokens of a tile with sums (checked above).
        unsafe { self.sums[b * TOKEN_TILE + t].assume_init() }
    }

    /// The pairs of block `b` from token `t0` on, for a tier's register tile: pair `i` of
    /// token `t0 + t` at offset `i · TOKEN_TILE + t`. Entries of tokens at or past
    /// `tokens` are not initialized: a kernel reads tokens `t0..tokens` only.
    #[inline]
    pub fn block_pairs(&self, b: usize, t0: usize) -> *const i32 {
        self.pairs[b * QBLOCK / 2 * TOKEN_TILE + t0..].as_ptr() as *const i32
    }

    /// Quantize tokens `t0..t1` of `x` with a tier's row quantizer (which must compute what
    /// [`quantize_block`] does, block by block).
    pub fn fill(&mut self, x: &Activations<'_>, t0: usize, t1: usize, quantize: fn(&[f32], &mut [i16], &mut [f32])) {
        assert!(t1 - t0 <= TOKEN_TILE && x.k == self.k);
        let (k, nb) = (self.k, self.k / QBLOCK);
        let mut q = [0i16; MAX_K];
        let mut d = [0f32; MAX_K / QBLOCK];
        for (t, r) in (t0..t1).enumerate() {
            quantize(x.row(r), &mut q[..k], &mut d[..nb]);
            for (b, (&s, qb)) in d[..nb].iter().zip(q[..k].chunks_exact(QBLOCK)).enumerate() {
                self.d[b * TOKEN_TILE + t] = MaybeUninit::new(s);
                if self.with_sums {
                    let isum: i32 = qb.iter().map(|&v| v as i32).sum();
                    self.sums[b * TOKEN_TILE + t] = MaybeUninit::new(isum as f32 * s);
                }
            }
            for (p, pair) in q[..k].chunks_exact(2).enumerate() {
                let v = (pair[0] as u16 as u32 | (pair[1] as u16 as u32) << 16) as i32;
                self.pairs[p * TOKEN_TILE + t] = MaybeUninit::new(v);
            }
        }
        self.tokens = t1 - t0;
    }
}

/// [`quantize_block`] over a row: `q` gets `x.len()` values, `d` one scale per block.
pub fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
    quantize_blocks(x, q, d, quantize_block)
}

/// A row, block by block, with a tier's block quantizer (each call gets exactly one block of
/// [`QBLOCK`] values and its quants).
pub fn quantize_blocks(x: &[f32], q: &mut [i16], d: &mut [f32], mut block: impl FnMut(&[f32], &mut [i16]) -> f32) {
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
    /// [`quantize_block`], exactly.
    fn quantize(x: &[f32], q: &mut [i16]) -> f32;
    /// [`quantize_row`], exactly (one feature check per row, not per block).
    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]);
    /// For tokens `0..tile.tokens`: the 16 rows' values of one panel in the form `FORM`
    /// ([`pack::SYMMETRIC`], [`pack::OFFSET`], [`pack::HALVES`]), computed as
    /// [`scalar::panel_dots`] does (the same integer sums, the same f32 operations in order).
    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]);
    /// `h = gelu_tanh(g) ⊙ u`.
    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]);
}

fn check(x: &Activations<'_>, w: &PackedQ8, out: &[f32], n: usize) {
    assert!(
        x.k == w.cols() && n == w.rows() && out.len() >= x.rows * n,
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
            std::ptr::copy_nonoverlapping(v.as_ptr(), ptr.get().add((t0 + i) * n + p * PANEL), width);
        }
    }
}

/// The driver both matmuls share: threads take one chunk of panels each; each quantizes a
/// tile of tokens on its stack and has `panel(tile, p, out)` write panel `p`'s 16 columns of
/// every token of the tile, which are then stored.
fn drive<T: FastTier>(
    x: Activations<'_>,
    w: &PackedQ8,
    out: &mut [f32],
    n: usize,
    par: Par,
    panel: impl Fn(&QTile, usize, &mut [[f32; PANEL]; TOKEN_TILE]) + Sync,
) {
    check(&x, w, out, n);
    let ptr = OutPtr::new(out);
    let work = |p0: usize, p1: usize| {
        let mut tile = QTile::new(x.k, w.form() == PanelForm::Offset);
        let mut vals = [[0f32; PANEL]; TOKEN_TILE];
        for t0 in (0..x.rows).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(x.rows);
            tile.fill(&x, t0, t1, T::quantize_row);
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
    match w.form() {
        PanelForm::Symmetric => T::dots::<SYMMETRIC>,
        PanelForm::Offset => T::dots::<OFFSET>,
        PanelForm::Halves => T::dots::<HALVES>,
    }
}

/// The plain matmul driver.
pub fn matmul<T: FastTier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    assert_eq!(w.groups(), 1, "a plain matmul's weight is one group");
    let dots = dots_for::<T>(w);
    drive::<T>(x, w, out, n, par, |tile, p, vals| dots(tile, w.panel(0, p), vals));
}

/// The GeGLU driver: `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)`, gate and up panels of
/// the same columns side by side.
pub fn matmul_geglu<T: FastTier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    assert_eq!(w.groups(), 2, "a GeGLU weight is two groups (gate, up)");
    let dots = dots_for::<T>(w);
    drive::<T>(x, w, out, f, par, |tile, p, h| {
        let mut gate = [[0f32; PANEL]; TOKEN_TILE];
        let mut up = [[0f32; PANEL]; TOKEN_TILE];
        dots(tile, w.panel(0, p), &mut gate);
        dots(tile, w.panel(1, p), &mut up);
        let len = tile.tokens * PANEL;
        T::geglu(
            &gate.as_flattened()[..len],
            &up.as_flattened()[..len],
            &mut h.as_flattened_mut()[..len],
        );
    });
}

/// A tier's fast kernels for weights of type `W` (which must have a panel form).
pub const fn kernels<T: FastTier, W: WeightType>(name: &'static str) -> FastKernels {
    assert!(W::PANEL_FORM.is_some(), "fast kernels for a type without a panel form");
    FastKernels {
        name,
        pack: pack::pack::<W>,
        quantize: T::quantize,
        matmul: matmul::<T>,
        matmul_geglu: matmul_geglu::<T>,
        max_k: MAX_K,
    }
}

/// A tier's `fast_kernels` list: every quantized type, each entry named `<prefix>.<type>`. With
/// two tiers, the symmetric types (Q8_0, Q4_0, Q5_0) run the first one's kernels and the offset
/// and halves types the second's (a tier may lend them from a narrower one it contains).
/// Adding a quantized type to the fast precision is one line here.
macro_rules! fast_kernel_list {
    ($tier:ty, $prefix:literal) => {
        $crate::fast::fast_kernel_list!($tier, $prefix; $tier, $prefix)
    };
    ($sym:ty, $sym_prefix:literal; $other:ty, $other_prefix:literal) => {
        &[
            $crate::fast::fast_kernel_list!(@entry $sym, $sym_prefix, Q8_0, "q8_0"),
            $crate::fast::fast_kernel_list!(@entry $sym, $sym_prefix, Q4_0, "q4_0"),
            $crate::fast::fast_kernel_list!(@entry $sym, $sym_prefix, Q5_0, "q5_0"),
            $crate::fast::fast_kernel_list!(@entry $other, $other_prefix, Q4_1, "q4_1"),
            $crate::fast::fast_kernel_list!(@entry $other, $other_prefix, Q5_1, "q5_1"),
            $crate::fast::fast_kernel_list!(@entry $other, $other_prefix, Q4K, "q4_k"),
            $crate::fast::fast_kernel_list!(@entry $other, $other_prefix, Q5K, "q5_k"),
            $crate::fast::fast_kernel_list!(@entry $other, $other_prefix, Q6K, "q6_k"),
        ]
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
