//! IQ4_XS weights: super-blocks of 256 values (136 bytes): an f16 `d`, a 6-bit scale `ls` per
//! 32 values and nibbles indexing the non-linear table `K`; value = `d · (ls − 32) · K[nibble]`.
//! Each 32 values are symmetric with scale `d · (ls − 32)` (an f16 times a 6-bit integer:
//! exact in f32), so the integer precisions' panels hold it losslessly in their Q8_0 form.

use gg_ops::{BlockIq4Xs, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Iq4Xs;

impl WeightType for Iq4Xs {
    const DTYPE: DType = DType::IQ4XS;
    type Block = BlockIq4Xs;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockIq4Xs], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockIq4Xs) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Symmetric);

    fn panel_blocks(block: &BlockIq4Xs, out: &mut [SubBlock]) {
        for (ib, o) in out.iter_mut().enumerate().take(QK_K / 32) {
            let (dl, q) = block.sub_block(ib);
            *o = SubBlock::symmetric(dl, q);
        }
    }
}

const _: () = assert!(layout_agrees::<Iq4Xs>() && std::mem::size_of::<BlockIq4Xs>() == 136);
