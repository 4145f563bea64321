//! IQ4_NL weights: blocks of 32 values as an f16 scale and 32 nibbles indexing the non-linear
//! table `K` (18 bytes); value `j` is `d · K[nibble_j]`. Symmetric with the table entries as the
//! quants: the integer precisions' panels hold it losslessly in their Q8_0 form.

use gg_ops::{BlockIq4Nl, DType, QK4_NL};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Iq4Nl;

impl WeightType for Iq4Nl {
    const DTYPE: DType = DType::IQ4NL;
    type Block = BlockIq4Nl;
    const BLOCK_LEN: usize = QK4_NL;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockIq4Nl], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK4_NL)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockIq4Nl) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Symmetric);

    fn panel_blocks(block: &BlockIq4Nl, out: &mut [SubBlock]) {
        let (d, q) = block.scale_and_values();
        out[0] = SubBlock::symmetric(d.to_f32(), q);
    }
}

const _: () = assert!(layout_agrees::<Iq4Nl>() && std::mem::size_of::<BlockIq4Nl>() == 18);
