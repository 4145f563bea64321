//! Q8_0 weights repacked into panels of 16 rows, made once at load.
//!
//! A panel holds rows `16p .. 16p + 16` of a row group (rows past the group's end are zeros
//! with scale 0). For each block `b` of 32 columns a panel stores 576 bytes: the quants as 16
//! column pairs × 16 rows × 2 bytes (`[i][r] = (q[r][2i], q[r][2i + 1])`), so one 32-byte load
//! gives the same two columns of all 16 rows — what a 16-lane `vpdpwssd`/`madd` multiplies
//! by one broadcast pair of activations — then the 16 rows' scales as f32. Blocks of a panel
//! follow each other, so a panel streams front to back along `k`.

use gg_ops::{BlockQ4_0, BlockQ5_0, BlockQ8_0, DType, WeightView};

use super::QBLOCK;

/// Rows per panel.
pub const PANEL: usize = 16;
/// Bytes of one panel's block: 512 quant bytes, 16 f32 scales.
pub const PANEL_BLOCK_BYTES: usize = PANEL * QBLOCK + PANEL * 4;
/// Offset of the scales inside a panel block.
pub const SCALES_AT: usize = PANEL * QBLOCK;

/// A Q8_0 weight `(groups · rows, cols)` as panels (see the module docs).
pub struct PackedQ8 {
    /// Cache-line aligned storage.
    lines: Vec<[u64; 8]>,
    /// Rows per group, and groups (GeGLU weights are gate rows then up rows).
    rows: usize,
    groups: usize,
    cols: usize,
}

impl PackedQ8 {
    pub fn rows(&self) -> usize {
        self.rows
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

    /// Panel `p` of group `g`: `blocks()` panel blocks of [`PANEL_BLOCK_BYTES`].
    #[inline]
    pub fn panel(&self, g: usize, p: usize) -> &[u8] {
        let len = self.blocks() * PANEL_BLOCK_BYTES;
        let at = (g * self.panels() + p) * len;
        &self.raw()[at..at + len]
    }
}

/// Block `b` of a symmetric 32-value type as (scale, quants) with `value_i = d · q_i` exactly.
type BlockReader<'a> = Box<dyn Fn(usize) -> (half::f16, [i8; QBLOCK]) + 'a>;

fn symmetric_blocks<'a>(w: WeightView<'a>) -> Option<BlockReader<'a>> {
    use gg_ops::quant::legacy::SymmetricBlock;
    match w.dtype() {
        DType::Q8_0 => {
            let b = w.cast::<BlockQ8_0>();
            Some(Box::new(move |i| (b[i].d, b[i].qs)))
        }
        // Q4_0 and Q5_0 quants (−8..8, −16..16) are Q8_0 quants with the same scale: the
        // panels hold them without loss, and the kernels need not know.
        DType::Q4_0 => {
            let b = w.cast::<BlockQ4_0>();
            Some(Box::new(move |i| b[i].scale_and_quants()))
        }
        DType::Q5_0 => {
            let b = w.cast::<BlockQ5_0>();
            Some(Box::new(move |i| b[i].scale_and_quants()))
        }
        _ => None,
    }
}

/// Whether [`pack_q8_0`] takes weights of this type.
pub fn packs(dtype: DType) -> bool {
    matches!(dtype, DType::Q8_0 | DType::Q4_0 | DType::Q5_0)
}

/// Repack a Q8_0 (or Q4_0/Q5_0, which are Q8_0 with fewer levels) weight of `groups · rows`
/// rows into panels per group.
pub fn pack_q8_0(w: WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
    let Some(block) = symmetric_blocks(w) else {
        return Err(format!("the fast Q8_0 kernels cannot take {} weights", w.dtype()));
    };
    if groups == 0 || !w.rows().is_multiple_of(groups) {
        return Err(format!("{} rows do not split into {groups} groups", w.rows()));
    }
    let (rows, cols) = (w.rows() / groups, w.cols());
    let nb = cols / QBLOCK;
    let panels = rows.div_ceil(PANEL);
    let total = groups * panels * nb * PANEL_BLOCK_BYTES;
    let mut packed = PackedQ8 {
        lines: vec![[0u64; 8]; total.div_ceil(64)],
        rows,
        groups,
        cols,
    };
    let out: &mut [u8] = bytemuck::cast_slice_mut(&mut packed.lines);
    for g in 0..groups {
        for p in 0..panels {
            for b in 0..nb {
                let at = ((g * panels + p) * nb + b) * PANEL_BLOCK_BYTES;
                let dst = &mut out[at..at + PANEL_BLOCK_BYTES];
                for r in 0..PANEL.min(rows - p * PANEL) {
                    let (d, qs) = block((g * rows + p * PANEL + r) * nb + b);
                    for i in 0..QBLOCK / 2 {
                        dst[(i * PANEL + r) * 2] = qs[2 * i] as u8;
                        dst[(i * PANEL + r) * 2 + 1] = qs[2 * i + 1] as u8;
                    }
                    let s = SCALES_AT + r * 4;
                    dst[s..s + 4].copy_from_slice(&d.to_f32().to_le_bytes());
                }
            }
        }
    }
    Ok(packed)
}

/// A panel block's quant of row `r`, column `c` (what the packing put there), and its scale.
#[inline]
pub fn quant_at(block: &[u8], r: usize, c: usize) -> i8 {
    block[((c / 2) * PANEL + r) * 2 + c % 2] as i8
}

/// A panel block's 16 scales.
#[inline]
pub fn scales(block: &[u8]) -> [f32; PANEL] {
    std::array::from_fn(|r| {
        let s = SCALES_AT + r * 4;
        f32::from_le_bytes(block[s..s + 4].try_into().expect("4 bytes"))
    })
}
