//! Q3_K weights: super-blocks of 256 values (110 bytes): 3-bit quants (2 low bits plus a high
//! bit mask), sixteen 6-bit scales (one per 16 values) and an f16 `d`;
//! value = `d · (sc_j − 32) · q`, `q` in −4..4.
//! The integer precisions' panels hold it losslessly in their halves form (`crate::fast::pack`).

use gg_ops::{BlockQ3K, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q3K;

impl WeightType for Q3K {
    const DTYPE: DType = DType::Q3K;
    type Block = BlockQ3K;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ3K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ3K) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Halves);

    fn panel_blocks(block: &BlockQ3K, out: &mut [SubBlock]) {
        let q = block.quants();
        for (j, (o, qj)) in out.iter_mut().zip(q.chunks_exact(32)).enumerate() {
            *o = SubBlock {
                q: qj.try_into().expect("32 quants"),
                scale: [block.scale(2 * j), block.scale(2 * j + 1)],
                offset: [0.0; 2],
            };
        }
    }
}

const _: () = assert!(layout_agrees::<Q3K>() && std::mem::size_of::<BlockQ3K>() == 110);
