//! The `int8` precision: the fast precision's scheme with activations quantized per block of
//! 32 to 8 bits (`d = amax / 127`), as llama.cpp does, over the same panels with their quants
//! arranged in quads ([`Layout::Quads`]).
//!
//! Why a second integer precision: on CPUs with AVX-512 VNNI, `vpdpbusd` multiplies four byte
//! pairs per 32-bit lane where `vpdpwssd` multiplies two 16-bit pairs, so the matmuls do twice
//! the products per instruction. The price is the 8-bit activations' error (llama.cpp's vectors
//! sit at cosine ~0.998 of the exact answer on the golden texts); the README reports ours.
//! Elsewhere (AVX2, NEON) 8-bit products are no faster than 16-bit ones, and those tiers offer
//! no int8 kernels.
//!
//! The specification: a block's 32 products `q_w · q_x` are summed exactly in 32 bits, then
//! `acc += (sum as f32) · (d_w · d_x)` — in the halves forms per 16-value half, first half
//! first; in the offset form `o_w · Σx` follows, `Σx = (Σq_x as f32) · d_x`, in the halves
//! with offsets each half's `o_h · Σx_h` right after its products, `Σx_h = (Σ_h q_x as f32) · d_x`
//! — exactly
//! [`super::scalar::panel_dots`]'s operations. An integer sum does not depend on how it is
//! computed (`vpdpbusd`'s unsigned weights `q_w + 128` with `128 · Σq_x` subtracted give the
//! same integer), so every tier agrees with the scalar spec bit for bit and no output depends
//! on batch composition or thread count.
//!
//! Rows of quantized activations take the fast precision's [`qrow_words`] words per token (the
//! planned scratch is the same), used as: `k` i8 quants (4 per word, value `c` at byte `c`),
//! then the `k / 32` block scales `d` (f32), then per block the integer sums of its two
//! 16-value halves (i32).

use super::drive::{drive, drive_geglu, quantize_rows_with, quantized_then, FastKernels, FastTier};
use super::pack::{
    extras, form_block_bytes, half_offsets, pack_quads, pack_quads_signed, quad_bias, scales, Layout, PackedQ8, PANEL,
};
use super::qrows::{
    block_scales_for, finite_amax, qrow_words, quantize_blocks, QRows, QTile, MAX_K, QBLOCK, TOKEN_TILE,
};
use super::scalar::Scalar;
use crate::kernels::{Activations, Par};
use crate::rows::RowOps;
use crate::wtypes::{is_halves, HALVES, HALVES_OFFSET, OFFSET};
use crate::wtypes::{PanelForm, WeightType, SYMMETRIC};

/// Largest 8-bit activation magnitude.
pub const QMAX8: f32 = 127.0;

/// 32-bit words an int8 row of `k` values uses (at the start of its [`qrow_words`]).
pub const fn row8_words(k: usize) -> usize {
    k / 4 + 3 * (k / QBLOCK)
}

const _: () = assert!(row8_words(MAX_K) <= qrow_words(MAX_K) && row8_words(QBLOCK) <= qrow_words(QBLOCK));

/// The quantization of one block to 8 bits, the specification: `d = amax / 127`,
/// `q = round(x / d)` computed as `x · (127 / amax)` rounded half to even, clamped to ±127.
/// A block holding a NaN or an infinity gets `d = NaN` and zero quants (its outputs are NaN).
#[inline]
pub fn quantize_block8(x: &[f32], q: &mut [i8]) -> f32 {
    debug_assert!(x.len() == QBLOCK && q.len() == QBLOCK);
    let Some(amax) = finite_amax(x) else {
        q.fill(0);
        return f32::NAN;
    };
    let (d, id) = block_scales8(amax);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = (v * id).round_ties_even().clamp(-QMAX8, QMAX8) as i8;
    }
    d
}

/// `(d, 1/d)` for a block's largest magnitude (zeros for an all-zero block).
#[inline]
pub fn block_scales8(amax: f32) -> (f32, f32) {
    block_scales_for(amax, QMAX8)
}

/// [`quantize_block8`] over a row, with the two half sums of each block.
pub fn quantize_row8(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    quantize_blocks8(x, q, d, sums, quantize_block8)
}

/// A row, block by block, with a tier's block quantizer; then each block's half sums.
pub fn quantize_blocks8(
    x: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    sums: &mut [i32],
    block: impl FnMut(&[f32], &mut [i8]) -> f32,
) {
    assert_eq!(sums.len() * QBLOCK / 2, x.len(), "two sums per block");
    quantize_blocks(x, q, d, block);
    for (s, half) in sums.iter_mut().zip(q.chunks_exact(QBLOCK / 2)) {
        *s = half.iter().map(|&v| v as i32).sum();
    }
}

impl QTile<'_> {
    fn row8(&self, t: usize) -> &[u32] {
        &self.row_words(t)[..row8_words(self.k)]
    }

    /// Token `t`'s int8 quant of value `c`.
    #[inline]
    pub fn quant8(&self, t: usize, c: usize) -> i8 {
        assert!(c < self.k, "value {c} outside a row of {}", self.k);
        (self.row8(t)[c / 4] >> (8 * (c % 4))) as u8 as i8
    }

    /// Token `t`'s int8 scale of block `b`.
    #[inline]
    pub fn scale8(&self, t: usize, b: usize) -> f32 {
        let nb = self.k / QBLOCK;
        assert!(b < nb, "block {b} outside a row of {nb}");
        f32::from_bits(self.row8(t)[self.k / 4 + b])
    }

    /// Token `t`'s integer sum of half `h` (values `16h .. 16h + 16`) of block `b`.
    #[inline]
    pub fn half_sum8(&self, t: usize, b: usize, h: usize) -> i32 {
        let nb = self.k / QBLOCK;
        assert!(b < nb && h < 2, "half {h} of block {b} outside a row of {nb}");
        self.row8(t)[self.k / 4 + nb + 2 * b + h] as i32
    }

    /// Token `t`'s int8 row for a tier's register tile: [`row8_words`] words (see the module
    /// docs for where block `b`'s quads, scale and half sums are).
    #[inline]
    pub fn row8_ptr(&self, t: usize) -> *const u32 {
        self.row8(t).as_ptr()
    }
}

/// What a tier provides for the int8 kernels; the drivers are the fast precision's.
pub trait Int8Tier: Send + Sync + 'static {
    /// The tier's row primitives (the norm fused into the quantization).
    type Rows: RowOps;
    /// The panels' quants: biased unsigned ([`Layout::Quads`], for `vpdpbusd`) or signed
    /// ([`Layout::QuadsSigned`], for products that take signed weights).
    const LAYOUT: Layout = Layout::Quads;
    /// Tokens per tile of the driver's loop ([`super::FastTier::TOKENS`]).
    const TOKENS: usize = TOKEN_TILE;
    /// [`quantize_row8`], exactly.
    fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]);
    /// For tokens `0..tile.tokens`: the 16 rows' values of one quads panel of the form `FORM`,
    /// computed as [`panel_dots8`] does.
    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]);
    /// `h = gelu_tanh(g) ⊙ u`.
    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]);
}

/// Quantize one (already normalized) row into its words (see the module docs).
fn quantize_row_words<T: Int8Tier>(src: &[f32], out: &mut [u32]) {
    let (k, nb) = (src.len(), src.len() / QBLOCK);
    let (q, rest) = out.split_at_mut(k / 4);
    let (d, rest) = rest.split_at_mut(nb);
    let sums = &mut rest[..2 * nb];
    T::quantize_row(
        src,
        bytemuck::cast_slice_mut(q),
        bytemuck::cast_slice_mut(d),
        bytemuck::cast_slice_mut(sums),
    );
}

/// [`super::QuantizeRowsFn`] for a tier: rows split over the team. Every row gets its half
/// sums (`with_sums` is the fast layout's notion; the int8 kernels of every form read them).
pub fn quantize_rows8<T: Int8Tier>(
    x: Activations<'_>,
    norm: Option<(&[f32], f32)>,
    out: &mut [u32],
    _with_sums: bool,
    par: Par,
) {
    quantize_rows_with::<T::Rows>(x, norm, out, par, quantize_row_words::<T>)
}

/// The specification: token `t` of the tile against the 16 rows of a quads panel of the form
/// `FORM` (see the module docs).
pub fn panel_dots8<const FORM: u8>(tile: &QTile, t: usize, panel: &[u8]) -> [f32; PANEL] {
    let mut acc = [0f32; PANEL];
    let bias = quad_bias(FORM);
    let sums = |b: usize, blk: &[u8], cols: std::ops::Range<usize>| {
        let mut s = [0i32; PANEL];
        for c in cols {
            let x = tile.quant8(t, b * QBLOCK + c) as i32;
            for (r, s) in s.iter_mut().enumerate() {
                let w = super::pack::quad_at(blk, r, c) as i32 - bias;
                *s += w * x;
            }
        }
        s
    };
    for (b, blk) in panel.chunks_exact(form_block_bytes(FORM)).enumerate() {
        let (sc, dx) = (scales(blk), tile.scale8(t, b));
        if is_halves(FORM) {
            let sc2 = extras(blk);
            let (lo, hi) = (sums(b, blk, 0..QBLOCK / 2), sums(b, blk, QBLOCK / 2..QBLOCK));
            for (h, (sums, sc)) in [(lo, sc), (hi, sc2)].into_iter().enumerate() {
                for r in 0..PANEL {
                    acc[r] += sums[r] as f32 * (sc[r] * dx);
                }
                if FORM == HALVES_OFFSET {
                    let (off, sx) = (half_offsets(blk, h), tile.half_sum8(t, b, h) as f32 * dx);
                    for r in 0..PANEL {
                        acc[r] += off[r] * sx;
                    }
                }
            }
            continue;
        }
        let s = sums(b, blk, 0..QBLOCK);
        for r in 0..PANEL {
            acc[r] += s[r] as f32 * (sc[r] * dx);
        }
        if FORM == OFFSET {
            let off = extras(blk);
            let sx = (tile.half_sum8(t, b, 0) + tile.half_sum8(t, b, 1)) as f32 * dx;
            for r in 0..PANEL {
                acc[r] += off[r] * sx;
            }
        }
    }
    acc
}

/// The scalar tier of the int8 precision.
pub struct Scalar8;

impl Int8Tier for Scalar8 {
    type Rows = crate::rows::ScalarRows;

    fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
        quantize_row8(x, q, d, sums)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        for (t, o) in out.iter_mut().enumerate().take(tile.tokens) {
            *o = panel_dots8::<FORM>(tile, t, panel);
        }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        <Scalar as FastTier>::geglu(g, u, h)
    }
}

type DotsFn = fn(&QTile, &[u8], &mut [[f32; PANEL]; TOKEN_TILE]);

fn dots_for<T: Int8Tier>(w: &PackedQ8) -> DotsFn {
    assert_eq!(w.layout(), T::LAYOUT, "int8 kernels over the tier's quads panels");
    match w.form() {
        PanelForm::Symmetric => T::dots::<SYMMETRIC>,
        PanelForm::Offset => T::dots::<OFFSET>,
        PanelForm::Halves => T::dots::<HALVES>,
        PanelForm::HalvesOffset => T::dots::<HALVES_OFFSET>,
        PanelForm::Wide => unreachable!("float weights are never packed in quads"),
    }
}

/// The plain matmul over int8 rows.
pub fn matmul_q8<T: Int8Tier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    assert_eq!(w.groups(), 1, "a plain matmul's weight is one group");
    let dots = dots_for::<T>(w);
    drive(x, w, out, (n, T::TOKENS), par, |tile, p, vals| {
        dots(tile, w.panel(0, p), vals)
    });
}

/// The GeGLU matmul over int8 rows (gate and up panels side by side, see
/// [`super::matmul_geglu_q`]).
pub fn matmul_geglu_q8<T: Int8Tier>(x: &QRows<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    assert_eq!(w.groups(), 2, "a GeGLU weight is two groups (gate, up)");
    let dots = dots_for::<T>(w);
    drive_geglu(x, w, out, (f, T::TOKENS), par, dots, T::geglu);
}

fn matmul8<T: Int8Tier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], n: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows8::<T>, |q| matmul_q8::<T>(q, w, out, n, par))
}

fn matmul_geglu8<T: Int8Tier>(x: Activations<'_>, w: &PackedQ8, out: &mut [f32], f: usize, par: Par) {
    quantized_then(x, w, par, quantize_rows8::<T>, |q| {
        matmul_geglu_q8::<T>(q, w, out, f, par)
    })
}

/// [`quantize_block8`] of a tier, widened to the [`FastKernels::quantize`] signature (tests).
fn quantize_widened<T: Int8Tier>(x: &[f32], q: &mut [i16]) -> f32 {
    let (mut q8, mut d, mut s) = ([0i8; QBLOCK], [0f32; 1], [0i32; 2]);
    T::quantize_row(x, &mut q8, &mut d, &mut s);
    for (o, &v) in q.iter_mut().zip(&q8) {
        *o = v as i16;
    }
    d[0]
}

/// A tier's int8 kernels for weights of type `W`, if the type has an 8-bit panel form (float
/// weights run the fast kernels).
pub const fn kernels8<T: Int8Tier, W: WeightType>() -> Option<FastKernels> {
    if matches!(W::PANEL_FORM, None | Some(PanelForm::Wide)) {
        return None;
    }
    Some(FastKernels {
        act: "i8",
        pack: match T::LAYOUT {
            Layout::QuadsSigned => pack_quads_signed::<W>,
            _ => pack_quads::<W>,
        },
        quantize: quantize_widened::<T>,
        quantize_rows: quantize_rows8::<T>,
        matmul: matmul8::<T>,
        matmul_geglu: matmul_geglu8::<T>,
        matmul_q: matmul_q8::<T>,
        matmul_geglu_q: matmul_geglu_q8::<T>,
        max_k: MAX_K,
    })
}
