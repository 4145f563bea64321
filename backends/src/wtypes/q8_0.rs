//! Q8_0 weights: blocks of 32 signed bytes with one f16 scale (34 bytes); value `i` of a block
//! is `d · q[i]`, exactly representable in f32. Integer kernels pair it with Q8_0 activations.

use gg_ops::{BlockQ8_0, DType, QK8_0};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q8_0;

impl WeightType for Q8_0 {
    const DTYPE: DType = DType::Q8_0;
    type Block = BlockQ8_0;
    const BLOCK_LEN: usize = QK8_0;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ8_0], out: &mut [f32]) {
        gg_ops::quant::dequantize_row_q8_0(blocks, out);
    }

    fn is_finite(block: &BlockQ8_0) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Symmetric);

    fn panel_blocks(block: &BlockQ8_0, out: &mut [SubBlock]) {
        out[0] = SubBlock::symmetric(block.d.to_f32(), block.qs);
    }
}

const _: () = assert!(layout_agrees::<Q8_0>() && std::mem::size_of::<BlockQ8_0>() == 34 && QK8_0 == 32);
