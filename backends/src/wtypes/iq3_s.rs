//! IQ3_S weights: super-blocks of 256 values (110 bytes): an f16 `d`, a 4-bit scale `s` per 32
//! values, and per 4 values a 9-bit index into a grid of odd magnitudes 1..=15 plus a sign bit
//! per value; value = `d · (1 + 2s) · (±grid)`.
//! Each 32 values are symmetric with scale `d · (1 + 2s)` (exact in f32) and quants ±1..=15, so
//! the integer precisions' panels hold it losslessly in their Q8_0 form.

use gg_ops::{BlockIq3S, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Iq3S;

impl WeightType for Iq3S {
    const DTYPE: DType = DType::IQ3S;
    type Block = BlockIq3S;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockIq3S], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockIq3S) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Symmetric);

    fn panel_blocks(block: &BlockIq3S, out: &mut [SubBlock]) {
        for (ib, o) in out.iter_mut().enumerate().take(QK_K / 32) {
            let (dl, q) = block.sub_block(ib);
            *o = SubBlock::symmetric(dl, q);
        }
    }
}

const _: () = assert!(layout_agrees::<Iq3S>() && std::mem::size_of::<BlockIq3S>() == 110);
