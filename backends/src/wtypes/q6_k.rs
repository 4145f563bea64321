//! Q6_K weights: super-blocks of 256 values (210 bytes): 6-bit quants, sixteen i8 scales (one
//! per 16 values) and an f16 `d`; value = `d · sc_j · (q − 32)`.
//! The fast precision's panels hold it losslessly in their halves form ((`crate::fast::pack`)).

use gg_ops::{BlockQ6K, DType, QK_K};

use super::weight_type::{layout_agrees, PanelForm, SubBlock, WeightType};

pub struct Q6K;

impl WeightType for Q6K {
    const DTYPE: DType = DType::Q6K;
    type Block = BlockQ6K;
    const BLOCK_LEN: usize = QK_K;
    const VEC_DOT_TYPE: DType = DType::Q8_0;

    fn dequantize(blocks: &[BlockQ6K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ6K) -> bool {
        block.d.is_finite()
    }

    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Halves);

    fn panel_blocks(block: &BlockQ6K, out: &mut [SubBlock]) {
        // `d·sc` is an f16 times an 8-bit integer: exact in f32.
        let d = block.d.to_f32();
        let q = block.quants();
        for (j, (o, qj)) in out.iter_mut().zip(q.chunks_exact(32)).enumerate() {
            *o = SubBlock {
                q: qj.try_into().expect("32 quants"),
                scale: [d * block.scales[2 * j] as f32, d * block.scales[2 * j + 1] as f32],
                offset: [0.0; 2],
            };
        }
    }
}

const _: () = assert!(layout_agrees::<Q6K>() && std::mem::size_of::<BlockQ6K>() == 210);
