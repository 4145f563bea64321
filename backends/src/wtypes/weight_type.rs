//! What a weight type is: its storage block with a `const` layout assert, the dequantization
//! that is the specification, and how the fast precision's panels hold it without loss.

use gg_ops::{DType, WeightView};

/// Values per panel sub-block (and per quantization block of the activations).
pub const SUB_BLOCK: usize = 32;

/// One weight type.
pub trait WeightType: Send + Sync + 'static {
    const DTYPE: DType;
    /// The storage unit: one block (`BLOCK_LEN` elements).
    type Block: bytemuck::Pod + Send + Sync;
    const BLOCK_LEN: usize;
    /// ggml's `vec_dot_type`: the blocks the integer kernels quantize activations in (for every
    /// quantized type here, 32-value blocks as Q8_0's, though to 16 bits: see `crate::fast`).
    const VEC_DOT_TYPE: DType;
    /// The specification: `blocks` to `out.len() == blocks.len() * BLOCK_LEN` values.
    fn dequantize(blocks: &[Self::Block], out: &mut [f32]);
    /// Whether a block holds only finite values (checked on the stored bits: scales for
    /// quantized types, every value for float types), so a load can refuse NaN/Inf weights
    /// without dequantizing everything.
    fn is_finite(block: &Self::Block) -> bool;
    /// How the fast precision's panels hold this type without loss, if they can.
    const PANEL_FORM: Option<PanelForm> = None;
    /// One block as `BLOCK_LEN / 32` panel sub-blocks, `value = scale · q + offset` exactly as
    /// [`WeightType::dequantize`] gives it. Called only when `PANEL_FORM` is an 8-bit form.
    fn panel_blocks(_block: &Self::Block, _out: &mut [SubBlock]) {
        unreachable!("{} has no 8-bit panel form", Self::DTYPE)
    }
}

/// How a type's values are made from a panel's quants (`crate::fast::pack` lays them out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelForm {
    /// `value = s · q` (Q8_0, Q4_0, Q5_0, IQ4_NL, IQ4_XS, IQ3_S).
    Symmetric,
    /// `value = s · q + o`, the offset per row and block (Q4_1, Q5_1, Q4_K, Q5_K).
    Offset,
    /// `value = s_h · q`, one scale per 16-value half (Q6_K, Q3_K).
    Halves,
    /// `value = s_h · q + o_h`, a scale and an offset per 16-value half (Q2_K).
    HalvesOffset,
    /// Float weights rounded at load to 11-bit-and-sign quants per block of 32 (F32, F16, BF16).
    Wide,
}

/// The forms as const-generic parameters of the kernels.
pub const SYMMETRIC: u8 = 0;
pub const OFFSET: u8 = 1;
pub const HALVES: u8 = 2;
pub const WIDE: u8 = 3;
pub const HALVES_OFFSET: u8 = 4;

/// Whether the form with id `form` scales the two 16-value halves of a block apart.
pub const fn is_halves(form: u8) -> bool {
    form == HALVES || form == HALVES_OFFSET
}

/// Whether the form with id `form` adds offsets (so its activations need their sums).
pub const fn has_offsets(form: u8) -> bool {
    form == OFFSET || form == HALVES_OFFSET
}

impl PanelForm {
    pub const fn id(self) -> u8 {
        match self {
            PanelForm::Symmetric => SYMMETRIC,
            PanelForm::Offset => OFFSET,
            PanelForm::Halves => HALVES,
            PanelForm::Wide => WIDE,
            PanelForm::HalvesOffset => HALVES_OFFSET,
        }
    }

    /// Whether the form adds offsets (its activations carry their sums).
    pub const fn has_offsets(self) -> bool {
        has_offsets(self.id())
    }
}

/// 32 values of one row as a panel holds them: `value_c = scale[c / 16] · q_c + offset[c / 16]`,
/// exactly (the symmetric form: both scales equal, offsets 0; the offset form: both scales
/// equal and both offsets; the halves form: offsets 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubBlock {
    pub q: [i8; SUB_BLOCK],
    pub scale: [f32; 2],
    pub offset: [f32; 2],
}

impl SubBlock {
    pub const ZERO: SubBlock = SubBlock {
        q: [0; SUB_BLOCK],
        scale: [0.0; 2],
        offset: [0.0; 2],
    };

    /// `value_c = d · q_c`.
    pub fn symmetric(d: f32, q: [i8; SUB_BLOCK]) -> SubBlock {
        SubBlock {
            q,
            scale: [d; 2],
            offset: [0.0; 2],
        }
    }

    /// `value_c = d · q_c + offset`, `q_c` unsigned below 128.
    pub fn offset(d: f32, offset: f32, q: &[u8]) -> SubBlock {
        SubBlock::halves_offset([d; 2], [offset; 2], q)
    }

    /// `value_c = scale[c / 16] · q_c + offset[c / 16]`, `q_c` unsigned below 128.
    pub fn halves_offset(scale: [f32; 2], offset: [f32; 2], q: &[u8]) -> SubBlock {
        SubBlock {
            q: std::array::from_fn(|c| {
                debug_assert!(q[c] < 128);
                q[c] as i8
            }),
            scale,
            offset,
        }
    }
}

/// The index of the first block holding a NaN or an infinity, if any.
pub fn first_non_finite<W: WeightType>(w: WeightView<'_>) -> Option<usize> {
    w.cast::<W::Block>().iter().position(|b| !W::is_finite(b))
}

/// The block layout agrees with what the rest of the project (the graph's sizes, the GGUF
/// reader) believes about the type; every type file asserts it in a `const`.
pub const fn layout_agrees<W: WeightType>() -> bool {
    std::mem::size_of::<W::Block>() == W::DTYPE.block_bytes() && W::BLOCK_LEN == W::DTYPE.block_len()
}

/// Elements `k0..k0 + out.len()` of row `j`, by the type's specification.
pub fn dequantize_row<W: WeightType>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
    debug_assert!(k0.is_multiple_of(W::BLOCK_LEN) && out.len().is_multiple_of(W::BLOCK_LEN));
    let per_row = w.cols() / W::BLOCK_LEN;
    let first = j * per_row + k0 / W::BLOCK_LEN;
    W::dequantize(&w.cast::<W::Block>()[first..first + out.len() / W::BLOCK_LEN], out);
}
