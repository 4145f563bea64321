//! Quantized weights repacked into panels of 16 rows of 8-bit quants, made once at load.
//!
//! A panel holds rows `16p .. 16p + 16` of a row group (rows past the group's end are zeros
//! with scale 0). For each block `b` of 32 columns a panel stores the quants as 16 column
//! pairs × 16 rows × 2 bytes (`[i][r] = (q[r][2i], q[r][2i + 1])`), so one 32-byte load gives
//! the same two columns of all 16 rows — what a 16-lane `vpdpwssd`/`madd` multiplies by one
//! broadcast pair of activations — then the 16 rows' scales as f32, for the offset and halves
//! forms a second set of 16 f32, for the halves-with-offsets form two more. Blocks of a panel
//! follow each other, so a panel streams front to back along `k`.
//!
//! Every quantized type of the project fits one form without loss (its 8-bit quants and f32
//! scales are exactly the file's values), so the fast precision computes the file's exact
//! weights times 16-bit activations, whatever the type:
//! - [`PanelForm::Symmetric`] (Q8_0, Q4_0, Q5_0, IQ4_NL, IQ4_XS, IQ3_S): `value = s · q`.
//! - [`PanelForm::Offset`] (Q4_1, Q5_1, Q4_K, Q5_K): `value = s · q + o`, the offset `o` per row
//!   and block (the kernels add `o · Σx` of the block).
//! - [`PanelForm::Halves`] (Q6_K, Q3_K, whose scales cover 16 values): `value = s_h · q` with one
//!   scale for columns 0..16 and one for 16..32.
//! - [`PanelForm::HalvesOffset`] (Q2_K, whose scales and mins cover 16 values):
//!   `value = s_h · q + o_h`; after the two scale sets come the first half's offsets and the
//!   second's (the kernels add `o_h · Σx_h`, the activations' half sums).
//!
//! Float weights (F32, F16, BF16) have no integer form to keep: the fifth form,
//! [`PanelForm::Wide`], rounds them at load to blocks of 32 integers of at most ±[`WIDE_QMAX`]
//! (11 bits and sign, stored as i16: a pair of columns of 16 rows is one 64-byte load) with one
//! f32 scale, `value = s · q` — the nearest such value, at most half a step (1/4094 of the
//! block's largest magnitude) from the file's weight. 32 products of such a quant and a 16-bit
//! activation sum exactly in 32 bits.

use gg_ops::WeightView;

use super::qrows::{MAX_K, QBLOCK};
use crate::wtypes::{has_offsets, PanelForm, SubBlock, WeightType, HALVES_OFFSET, SYMMETRIC, WIDE};

/// Rows per panel.
pub const PANEL: usize = 16;
/// Bytes of one panel block of the symmetric form: 512 quant bytes, 16 f32 scales.
pub const PANEL_BLOCK_BYTES: usize = PANEL * QBLOCK + PANEL * 4;
/// Offset of the scales inside a panel block of an 8-bit form.
pub const SCALES_AT: usize = PANEL * QBLOCK;
/// Offset of the second f32 set (offsets, or the second half's scales) inside a panel block.
pub const EXTRA_AT: usize = SCALES_AT + PANEL * 4;
/// Offsets of the halves-with-offsets form's two offset sets (first half, second half).
pub const HALF_OFFSETS_AT: [usize; 2] = [EXTRA_AT + PANEL * 4, EXTRA_AT + 2 * PANEL * 4];
/// Largest quant magnitude of the wide form: `32 · WIDE_QMAX · 32767 < 2³¹`, so a block's 32
/// products with 16-bit activations sum in an i32 lane without overflow.
pub const WIDE_QMAX: f32 = 2047.0;
const _: () = assert!(32 * 2047 * 32767 < i32::MAX as i64);

impl PanelForm {
    /// Bytes of one panel block in this form.
    pub const fn block_bytes(self) -> usize {
        form_block_bytes(self.id())
    }
}

/// The stride of one panel block of the form with id `form` (a kernel's const parameter):
/// the quants (2 bytes each in the wide form), the scales, a second f32 set for the offset
/// and halves forms, and two offset sets more for the halves-with-offsets form.
pub const fn form_block_bytes(form: u8) -> usize {
    match form {
        SYMMETRIC => PANEL_BLOCK_BYTES,
        WIDE => scales_at(WIDE) + PANEL * 4,
        HALVES_OFFSET => PANEL_BLOCK_BYTES + 3 * PANEL * 4,
        _ => PANEL_BLOCK_BYTES + PANEL * 4,
    }
}

/// Where a panel block's 16 scales start: after the quants.
pub const fn scales_at(form: u8) -> usize {
    if form == WIDE {
        2 * PANEL * QBLOCK
    } else {
        SCALES_AT
    }
}

/// How a panel block of an 8-bit form arranges its 512 quant bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// For the 16-bit activations of the fast precision: 16 column pairs × 16 rows × 2 bytes
    /// (`[i][r] = (q[r][2i], q[r][2i + 1])`), signed (see the module docs).
    Pairs,
    /// For the 8-bit activations of the int8 precision ([`super::int8`]): 8 column quads ×
    /// 16 rows × 4 bytes (`[j][r] = q[r][4j .. 4j + 4]`), one 64-byte load giving the same four
    /// columns of all 16 rows — what a 16-lane `vpdpbusd` multiplies by four broadcast
    /// activation bytes. `vpdpbusd` takes its weight operand unsigned: the symmetric and
    /// halves forms store `q + 128` (the kernels subtract `128 · Σx_q`), the forms with
    /// offsets their quants as they are (unsigned below 128 already).
    Quads,
    /// The quads layout with every quant stored as the signed byte it is (no bias): for the AMX
    /// tier's fast kernels, whose tile products take signed weights.
    QuadsSigned,
}

/// What the quads layout adds to a quant of the form with id `form` to store it unsigned.
pub const fn quad_bias(form: u8) -> i32 {
    if has_offsets(form) {
        0
    } else {
        128
    }
}

/// A quantized weight `(groups · rows, cols)` as panels (see the module docs).
pub struct PackedQ8 {
    /// Cache-line aligned storage.
    lines: Vec<[u64; 8]>,
    form: PanelForm,
    layout: Layout,
    /// Rows per group, and groups (GeGLU weights are gate rows then up rows).
    rows: usize,
    groups: usize,
    cols: usize,
}

impl PackedQ8 {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn form(&self) -> PanelForm {
        self.form
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn groups(&self) -> usize {
        self.groups
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.cols / QBLOCK
    }

    /// Panels per group.
    pub fn panels(&self) -> usize {
        self.rows.div_ceil(PANEL)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lines.len() * 64
    }

    fn raw(&self) -> &[u8] {
        bytemuck::cast_slice(&self.lines)
    }

    /// Panel `p` of group `g`: `blocks()` panel blocks of `form().block_bytes()`.
    #[inline]
    pub fn panel(&self, g: usize, p: usize) -> &[u8] {
        let len = self.blocks() * self.form.block_bytes();
        let at = (g * self.panels() + p) * len;
        &self.raw()[at..at + len]
    }
}

/// Most 32-value sub-blocks in one block of a type (a K-quant's 256 values).
const MAX_SUB_BLOCKS: usize = 8;

/// Repack a weight of `groups · rows` rows of type `W` into panels per group, in `W`'s form,
/// quants in pairs (the fast precision's layout).
pub fn pack<W: WeightType>(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    pack_layout::<W>(w, groups, Layout::Pairs)
}

/// [`pack`] with the quants in quads (the int8 precision's layout); float weights have none.
pub fn pack_quads<W: WeightType>(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    if W::PANEL_FORM == Some(PanelForm::Wide) {
        return Err(format!("the int8 kernels cannot take {} weights", w.dtype()));
    }
    pack_layout::<W>(w, groups, Layout::Quads)
}

/// [`pack_quads`] without the bias ([`Layout::QuadsSigned`]).
pub fn pack_quads_signed<W: WeightType>(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    if W::PANEL_FORM == Some(PanelForm::Wide) {
        return Err(format!("signed quads cannot take {} weights", w.dtype()));
    }
    pack_layout::<W>(w, groups, Layout::QuadsSigned)
}

fn pack_layout<W: WeightType>(w: WeightView<'_>, groups: usize, layout: Layout) -> Result<PackedQ8, String> {
    let Some(form) = W::PANEL_FORM else {
        return Err(format!("the fast kernels cannot take {} weights", w.dtype()));
    };
    if w.dtype() != W::DTYPE {
        return Err(format!("a {} packer given {} weights", W::DTYPE, w.dtype()));
    }
    if groups == 0 || !w.rows().is_multiple_of(groups) {
        return Err(format!("{} rows do not split into {groups} groups", w.rows()));
    }
    if form == PanelForm::Wide {
        return pack_wide::<W>(w, groups);
    }
    let (rows, cols) = (w.rows() / groups, w.cols());
    if !W::BLOCK_LEN.is_multiple_of(QBLOCK) || W::BLOCK_LEN > MAX_SUB_BLOCKS * QBLOCK {
        return Err(format!(
            "{} blocks of {} values do not split into at most {MAX_SUB_BLOCKS} panel sub-blocks",
            W::DTYPE,
            W::BLOCK_LEN
        ));
    }
    if !cols.is_multiple_of(W::BLOCK_LEN) {
        return Err(format!("rows of {cols} do not hold whole {} blocks", W::DTYPE));
    }
    let (nb, per_block) = (cols / QBLOCK, W::BLOCK_LEN / QBLOCK);
    let (panels, bb) = (rows.div_ceil(PANEL), form.block_bytes());
    let total = groups * panels * nb * bb;
    let mut packed = PackedQ8 {
        lines: vec![[0u64; 8]; total.div_ceil(64)],
        form,
        layout,
        rows,
        groups,
        cols,
    };
    let out: &mut [u8] = bytemuck::cast_slice_mut(&mut packed.lines);
    let blocks = w.cast::<W::Block>();
    let mut subs = [SubBlock::ZERO; MAX_SUB_BLOCKS];
    let subs = &mut subs[..per_block];
    for g in 0..groups {
        for row in 0..rows {
            let (p, r) = (row / PANEL, row % PANEL);
            let first = (g * rows + row) * (cols / W::BLOCK_LEN);
            for (nbi, block) in blocks[first..first + cols / W::BLOCK_LEN].iter().enumerate() {
                W::panel_blocks(block, subs);
                for (s, sub) in subs.iter().enumerate() {
                    let b = nbi * per_block + s;
                    let at = ((g * panels + p) * nb + b) * bb;
                    write_row(&mut out[at..at + bb], form, layout, r, sub);
                }
            }
        }
    }
    Ok(packed)
}

/// The wide form's rounding of 32 values, the specification: `d = amax / 2047`,
/// `q = round(v / d)` computed as `v · (2047 / amax)` rounded half to even, clamped (an all-zero
/// block has `d = 0` and zero quants). Returns `d`.
pub fn quantize_wide(v: &[f32], q: &mut [i16]) -> f32 {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if amax == 0.0 {
        q.fill(0);
        return 0.0;
    }
    let id = WIDE_QMAX / amax;
    for (o, &x) in q.iter_mut().zip(v) {
        *o = (x * id).round_ties_even().clamp(-WIDE_QMAX, WIDE_QMAX) as i16;
    }
    amax / WIDE_QMAX
}

/// [`pack`] for float weights: every row decoded by `W`'s specification, then rounded per
/// block of 32 by [`quantize_wide`].
fn pack_wide<W: WeightType>(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    let (rows, cols) = (w.rows() / groups, w.cols());
    if !cols.is_multiple_of(QBLOCK) || cols > MAX_K {
        return Err(format!(
            "rows of {cols} are not whole blocks of {QBLOCK} up to {}",
            MAX_K
        ));
    }
    let nb = cols / QBLOCK;
    let (panels, bb) = (rows.div_ceil(PANEL), form_block_bytes(WIDE));
    let mut packed = PackedQ8 {
        lines: vec![[0u64; 8]; (groups * panels * nb * bb).div_ceil(64)],
        form: PanelForm::Wide,
        layout: Layout::Pairs,
        rows,
        groups,
        cols,
    };
    let out: &mut [u8] = bytemuck::cast_slice_mut(&mut packed.lines);
    let mut row = [0f32; MAX_K];
    let mut q = [0i16; QBLOCK];
    for g in 0..groups {
        for r in 0..rows {
            crate::wtypes::dequantize_row::<W>(w, g * rows + r, 0, &mut row[..cols]);
            let (p, pr) = (r / PANEL, r % PANEL);
            for (b, v) in row[..cols].chunks_exact(QBLOCK).enumerate() {
                let d = quantize_wide(v, &mut q);
                let at = ((g * panels + p) * nb + b) * bb;
                let dst = &mut out[at..at + bb];
                for (c, &qc) in q.iter().enumerate() {
                    let i = ((c / 2) * PANEL + pr) * 2 + c % 2;
                    dst[2 * i..2 * i + 2].copy_from_slice(&qc.to_le_bytes());
                }
                let s = scales_at(WIDE) + pr * 4;
                dst[s..s + 4].copy_from_slice(&d.to_le_bytes());
            }
        }
    }
    Ok(packed)
}

/// Row `r` of a panel block from a sub-block.
fn write_row(dst: &mut [u8], form: PanelForm, layout: Layout, r: usize, sub: &SubBlock) {
    for (c, &q) in sub.q.iter().enumerate() {
        match layout {
            Layout::Pairs => dst[((c / 2) * PANEL + r) * 2 + c % 2] = q as u8,
            // An offset quant is below 128 (`SubBlock::offset`), so the sum stays in a byte.
            Layout::Quads => dst[((c / 4) * PANEL + r) * 4 + c % 4] = (q as i32 + quad_bias(form.id())) as u8,
            Layout::QuadsSigned => dst[((c / 4) * PANEL + r) * 4 + c % 4] = q as u8,
        }
    }
    let put = |dst: &mut [u8], at: usize, v: f32| dst[at + r * 4..at + r * 4 + 4].copy_from_slice(&v.to_le_bytes());
    put(dst, SCALES_AT, sub.scale[0]);
    match form {
        PanelForm::Symmetric => debug_assert!(sub.offset == [0.0; 2] && sub.scale[1] == sub.scale[0]),
        PanelForm::Offset => {
            debug_assert!(sub.offset[1] == sub.offset[0] && sub.scale[1] == sub.scale[0]);
            put(dst, EXTRA_AT, sub.offset[0])
        }
        PanelForm::Halves => {
            debug_assert!(sub.offset == [0.0; 2]);
            put(dst, EXTRA_AT, sub.scale[1])
        }
        PanelForm::HalvesOffset => {
            put(dst, EXTRA_AT, sub.scale[1]);
            put(dst, HALF_OFFSETS_AT[0], sub.offset[0]);
            put(dst, HALF_OFFSETS_AT[1], sub.offset[1]);
        }
        PanelForm::Wide => unreachable!("wide panels are written by pack_wide"),
    }
}

/// A panel block's quant of row `r`, column `c` (what the packing put there), for the 8-bit
/// forms in pairs.
#[inline]
pub fn quant_at(block: &[u8], r: usize, c: usize) -> i8 {
    block[((c / 2) * PANEL + r) * 2 + c % 2] as i8
}

/// The same for quads: the stored unsigned byte (the quant plus [`quad_bias`]).
#[inline]
pub fn quad_at(block: &[u8], r: usize, c: usize) -> u8 {
    block[((c / 4) * PANEL + r) * 4 + c % 4]
}

/// A wide panel block's quant of row `r`, column `c`.
#[inline]
pub fn wide_quant_at(block: &[u8], r: usize, c: usize) -> i16 {
    let i = ((c / 2) * PANEL + r) * 2 + c % 2;
    i16::from_le_bytes([block[2 * i], block[2 * i + 1]])
}

/// A panel block's 16 scales (of an 8-bit form).
#[inline]
pub fn scales(block: &[u8]) -> [f32; PANEL] {
    f32s(block, SCALES_AT)
}

/// A wide panel block's 16 scales.
#[inline]
pub fn wide_scales(block: &[u8]) -> [f32; PANEL] {
    f32s(block, scales_at(WIDE))
}

/// A panel block's second set of 16 f32 (offsets, or the second half's scales).
#[inline]
pub fn extras(block: &[u8]) -> [f32; PANEL] {
    f32s(block, EXTRA_AT)
}

/// A halves-with-offsets panel block's 16 offsets of half `h`.
#[inline]
pub fn half_offsets(block: &[u8], h: usize) -> [f32; PANEL] {
    f32s(block, HALF_OFFSETS_AT[h])
}

fn f32s(block: &[u8], at: usize) -> [f32; PANEL] {
    std::array::from_fn(|r| {
        let s = at + r * 4;
        f32::from_le_bytes(block[s..s + 4].try_into().expect("4 bytes"))
    })
}

/// The weight value a panel holds for row `r` (of group `g`), column `c`, in f64 (exact):
/// what the kernels multiply, for tests.
pub fn value_at(w: &PackedQ8, g: usize, r: usize, c: usize) -> f64 {
    let bb = w.form().block_bytes();
    let blk = &w.panel(g, r / PANEL)[(c / QBLOCK) * bb..][..bb];
    let (r, cb) = (r % PANEL, c % QBLOCK);
    if w.form() == PanelForm::Wide {
        return wide_scales(blk)[r] as f64 * wide_quant_at(blk, r, cb) as f64;
    }
    let q = match w.layout() {
        Layout::Pairs => quant_at(blk, r, cb) as f64,
        Layout::Quads => (quad_at(blk, r, cb) as i32 - quad_bias(w.form().id())) as f64,
        Layout::QuadsSigned => quad_at(blk, r, cb) as i8 as f64,
    };
    match w.form() {
        PanelForm::Symmetric => scales(blk)[r] as f64 * q,
        PanelForm::Offset => scales(blk)[r] as f64 * q + extras(blk)[r] as f64,
        PanelForm::Halves => {
            let s = if cb < 16 { scales(blk)[r] } else { extras(blk)[r] };
            s as f64 * q
        }
        PanelForm::HalvesOffset => {
            let s = if cb < 16 { scales(blk)[r] } else { extras(blk)[r] };
            s as f64 * q + half_offsets(blk, cb / 16)[r] as f64
        }
        PanelForm::Wide => unreachable!("handled above"),
    }
}
