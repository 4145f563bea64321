//! Q4_K weights: super-blocks of 256 values (144 bytes): f16 `d` and `dmin`, eight 6-bit
//! (scale, min) pairs, 4-bit quants; value = `d·sc_j · q − dmin·m_j` per 32-value sub-block.

use gg_ops::{BlockQ4K, DType, QK_K};

use super::{layout_agrees, WeightType};

pub struct Q4K;

impl WeightType for Q4K {
    const DTYPE: DType = DType::Q4K;
    type Block = BlockQ4K;
    const BLOCK_LEN: usize = QK_K;
    // ggml pairs it with Q8K activations; no integer kernel here takes it yet, so f32.
    const VEC_DOT_TYPE: DType = DType::F32;

    fn dequantize(blocks: &[BlockQ4K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ4K) -> bool {
        block.d.is_finite() && block.dmin.is_finite()
    }
}

const _: () = assert!(layout_agrees::<Q4K>() && std::mem::size_of::<BlockQ4K>() == 144);
