//! Q4_0 weights: blocks of 32 values as one f16 scale and 32 nibbles (18 bytes); value `i` is
//! `d · (q_i − 8)`. Symmetric: the fast precision's panels hold it, losslessly, in their Q8_0 form.

use gg_ops::quant::legacy::SymmetricBlock;
use gg_ops::{BlockQ4_0, DType, QK4_0};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q4_0;

impl WeightType for Q4_0 {
    const DTYPE: DType = DType::Q4_0;
    type Block = BlockQ4_0;
    const BLOCK_LEN: usize = QK4_0;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ4_0], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ4_0) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Symmetric);

    fn panel_blocks(block: &BlockQ4_0, out: &mut [SubBlock]) {
        let (d, q) = block.scale_and_quants();
        out[0] = SubBlock::symmetric(d.to_f32(), q);
    }
}

const _: () = assert!(layout_agrees::<Q4_0>() && std::mem::size_of::<BlockQ4_0>() == 18);
