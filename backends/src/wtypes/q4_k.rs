//! Q4_K weights: super-blocks of 256 values (144 bytes): f16 `d` and `dmin`, eight 6-bit
//! (scale, min) pairs, 4-bit quants; value = `d·sc_j · q − dmin·m_j` per 32-value sub-block.
//! The fast precision's panels hold it losslessly in their offset form ((`crate::fast::pack`)).

use gg_ops::quant::kquants::scale_min_k4;
use gg_ops::{BlockQ4K, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q4K;

impl WeightType for Q4K {
    const DTYPE: DType = DType::Q4K;
    type Block = BlockQ4K;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ4K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ4K) -> bool {
        block.d.is_finite() && block.dmin.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Offset);

    fn panel_blocks(block: &BlockQ4K, out: &mut [SubBlock]) {
        // `d·sc_j` and `dmin·m_j` are products of an f16 and a 6-bit integer: exact in f32.
        let (d, min) = (block.d.to_f32(), block.dmin.to_f32());
        let q = block.quants();
        for (j, (o, qj)) in out.iter_mut().zip(q.chunks_exact(32)).enumerate() {
            let (sc, m) = scale_min_k4(j, &block.scales);
            *o = SubBlock::offset(d * sc as f32, -(min * m as f32), qj);
        }
    }
}

const _: () = assert!(layout_agrees::<Q4K>() && std::mem::size_of::<BlockQ4K>() == 144);
