//! Quantized weights repacked into panels of 16 rows of 8-bit quants, made once at load.
//!
//! A panel holds rows `16p .. 16p + 16` of a row group (rows past the group's end are zeros
//! with scale 0). For each block `b` of 32 columns a panel stores the quants as 16 column
//! pairs × 16 rows × 2 bytes (`[i][r] = (q[r][2i], q[r][2i + 1])`), so one 32-byte load gives
//! the same two columns of all 16 rows — what a 16-lane `vpdpwssd`/`madd` multiplies by one
//! broadcast pair of activations — then the 16 rows' scales as f32, and for two of the three
//! [`PanelForm`]s a second set of 16 f32. Blocks of a panel follow each other, so a panel
//! streams front to back along `k`.
//!
//! Every quantized type of the project fits one form without loss (its 8-bit quants and f32
//! scales are exactly the file's values), so the fast precision computes the file's exact
//! weights times 16-bit activations, whatever the type:
//! - [`PanelForm::Symmetric`] (Q8_0, Q4_0, Q5_0): `value = s · q`.
//! - [`PanelForm::Offset`] (Q4_1, Q5_1, Q4_K, Q5_K): `value = s · q + o`, the offset `o` per row
//!   and block (the kernels add `o · Σx` of the block).
//! - [`PanelForm::Halves`] (Q6_K, whose scales cover 16 values): `value = s_h · q` with one scale
//!   for columns 0..16 and one for 16..32.

use gg_ops::WeightView;

use super::QBLOCK;
use crate::wtypes::WeightType;

/// Rows per panel.
pub const PANEL: usize = 16;
/// Bytes of one panel block of the symmetric form: 512 quant bytes, 16 f32 scales.
pub const PANEL_BLOCK_BYTES: usize = PANEL * QBLOCK + PANEL * 4;
/// Offset of the scales inside a panel block.
pub const SCALES_AT: usize = PANEL * QBLOCK;
/// Offset of the second f32 set (offsets, or the second half's scales) inside a panel block.
pub const EXTRA_AT: usize = SCALES_AT + PANEL * 4;

/// How a type's values are made from a panel's quants (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelForm {
    Symmetric,
    Offset,
    Halves,
}

/// The forms as const-generic parameters of the kernels.
pub const SYMMETRIC: u8 = 0;
pub const OFFSET: u8 = 1;
pub const HALVES: u8 = 2;

impl PanelForm {
    pub const fn id(self) -> u8 {
        match self {
            PanelForm::Symmetric => SYMMETRIC,
            PanelForm::Offset => OFFSET,
            PanelForm::Halves => HALVES,
        }
    }

    /// Bytes of one panel block in this form.
    pub const fn block_bytes(self) -> usize {
        form_block_bytes(self.id())
    }
}

/// The stride of one panel block of the form with id `form` (a kernel's const parameter):
/// the symmetric form has no second f32 set.
pub const fn form_block_bytes(form: u8) -> usize {
    if form == SYMMETRIC {
        PANEL_BLOCK_BYTES
    } else {
        PANEL_BLOCK_BYTES + PANEL * 4
    }
}

/// 32 values of one row as a panel holds them: `value_c = scale[c / 16] · q_c + offset`,
/// exactly (for the symmetric form both scales are equal and the offset 0; for the offset
/// form both scales are equal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubBlock {
    pub q: [i8; QBLOCK],
    pub scale: [f32; 2],
    pub offset: f32,
}

impl SubBlock {
    pub const ZERO: SubBlock = SubBlock {
        q: [0; QBLOCK],
        scale: [0.0; 2],
        offset: 0.0,
    };

    /// `value_c = d · q_c`.
    pub fn symmetric(d: f32, q: [i8; QBLOCK]) -> SubBlock {
        SubBlock {
            q,
            scale: [d; 2],
            offset: 0.0,
        }
    }

    /// `value_c = d · q_c + offset`, `q_c` unsigned below 128.
    pub fn offset(d: f32, offset: f32, q: &[u8]) -> SubBlock {
        SubBlock {
            q: std::array::from_fn(|c| {
                debug_assert!(q[c] < 128);
                q[c] as i8
            }),
            scale: [d; 2],
            offset,
        }
    }
}

/// A quantized weight `(groups · rows, cols)` as panels (see the module docs).
pub struct PackedQ8 {
    /// Cache-line aligned storage.
    lines: Vec<[u64; 8]>,
    form: PanelForm,
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

/// Repack a weight of `groups · rows` rows of type `W` into panels per group, in `W`'s form.
pub fn pack<W: WeightType>(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    let Some(form) = W::PANEL_FORM else {
        return Err(format!("the fast kernels cannot take {} weights", w.dtype()));
    };
    if w.dtype() != W::DTYPE {
        return Err(format!("a {} packer given {} weights", W::DTYPE, w.dtype()));
    }
    if groups == 0 || !w.rows().is_multiple_of(groups) {
        return Err(format!("{} rows do not split into {groups} groups", w.rows()));
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
                    write_row(&mut out[at..at + bb], form, r, sub);
                }
            }
        }
    }
    Ok(packed)
}

/// Row `r` of a panel block from a sub-block.
fn write_row(dst: &mut [u8], form: PanelForm, r: usize, sub: &SubBlock) {
    for i in 0..QBLOCK / 2 {
        dst[(i * PANEL + r) * 2] = sub.q[2 * i] as u8;
        dst[(i * PANEL + r) * 2 + 1] = sub.q[2 * i + 1] as u8;
    }
    let put = |dst: &mut [u8], at: usize, v: f32| dst[at + r * 4..at + r * 4 + 4].copy_from_slice(&v.to_le_bytes());
    put(dst, SCALES_AT, sub.scale[0]);
    match form {
        PanelForm::Symmetric => debug_assert!(sub.offset == 0.0 && sub.scale[1] == sub.scale[0]),
        PanelForm::Offset => put(dst, EXTRA_AT, sub.offset),
        PanelForm::Halves => put(dst, EXTRA_AT, sub.scale[1]),
    }
}

/// A panel block's quant of row `r`, column `c` (what the packing put there), and its scale.
#[inline]
pub fn quant_at(block: &[u8], r: usize, c: usize) -> i8 {
    block[((c / 2) * PANEL + r) * 2 + c % 2] as i8
}

/// A panel block's 16 scales.
#[inline]
pub fn scales(block: &[u8]) -> [f32; PANEL] {
    f32s(block, SCALES_AT)
}

/// A panel block's second set of 16 f32 (offsets, or the second half's scales).
#[inline]
pub fn extras(block: &[u8]) -> [f32; PANEL] {
    f32s(block, EXTRA_AT)
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
    let q = quant_at(blk, r, cb) as f64;
    match w.form() {
        PanelForm::Symmetric => scales(blk)[r] as f64 * q,
        PanelForm::Offset => scales(blk)[r] as f64 * q + extras(blk)[r] as f64,
        PanelForm::Halves => {
            let s = if cb < 16 { scales(blk)[r] } else { extras(blk)[r] };
            s as f64 * q
        }
    }
}
