//! Q4_1 weights: blocks of 32 values as f16 scale and minimum and 32 nibbles (20 bytes); value
//! `i` is `d · q_i + m`.
//! The fast precision's panels hold it losslessly in their offset form ((`crate::fast::pack`)).

use gg_ops::{BlockQ4_1, DType, QK4_0};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q4_1;

impl WeightType for Q4_1 {
    const DTYPE: DType = DType::Q4_1;
    type Block = BlockQ4_1;
    const BLOCK_LEN: usize = QK4_0;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ4_1], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ4_1) -> bool {
        block.d.is_finite() && block.m.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Offset);

    fn panel_blocks(block: &BlockQ4_1, out: &mut [SubBlock]) {
        out[0] = SubBlock::offset(block.d.to_f32(), block.m.to_f32(), &block.quants());
    }
}

const _: () = assert!(layout_agrees::<Q4_1>() && std::mem::size_of::<BlockQ4_1>() == 20);
