//! Q5_K weights: super-blocks of 256 values (176 bytes): as Q4_K with a 5th bit per quant.

use gg_ops::{BlockQ5K, DType, QK_K};

use super::{layout_agrees, WeightType};

pub struct Q5K;

impl WeightType for Q5K {
    const DTYPE: DType = DType::Q5K;
    type Block = BlockQ5K;
    const BLOCK_LEN: usize = QK_K;
    // ggml pairs it with Q8K activations; no integer kernel here takes it yet, so f32.
    const VEC_DOT_TYPE: DType = DType::F32;

    fn dequantize(blocks: &[BlockQ5K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ5K) -> bool {
        block.d.is_finite() && block.dmin.is_finite()
    }
}

const _: () = assert!(layout_agrees::<Q5K>() && std::mem::size_of::<BlockQ5K>() == 176);
