//! Q2_K weights: super-blocks of 256 values (84 bytes): 2-bit quants, per 16 values a 4-bit
//! scale and a 4-bit min, f16 `d` and `dmin`; value = `(d · sc_j) · q − dmin · m_j`, `q` in 0..4.
//! Its offsets change every 16 values, so the integer precisions' panels hold it in their
//! halves-with-offsets form (`crate::fast::pack`), losslessly: `d · sc_j` and `dmin · m_j` are
//! f16s times 4-bit integers, exact in f32.

use gg_ops::{BlockQ2K, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q2K;

impl WeightType for Q2K {
    const DTYPE: DType = DType::Q2K;
    type Block = BlockQ2K;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ2K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ2K) -> bool {
        block.d.is_finite() && block.dmin.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::HalvesOffset);

    fn panel_blocks(block: &BlockQ2K, out: &mut [SubBlock]) {
        let q = block.quants();
        for (j, (o, qj)) in out.iter_mut().zip(q.chunks_exact(32)).enumerate() {
            let ((s0, o0), (s1, o1)) = (block.scale_offset(2 * j), block.scale_offset(2 * j + 1));
            *o = SubBlock::halves_offset([s0, s1], [o0, o1], qj);
        }
    }
}

const _: () = assert!(layout_agrees::<Q2K>() && std::mem::size_of::<BlockQ2K>() == 84);
