//! Q6_K weights: super-blocks of 256 values (210 bytes): 6-bit quants, sixteen i8 scales (one
//! per 16 values) and an f16 `d`; value = `d · sc_j · (q − 32)`.

use gg_ops::{BlockQ6K, DType, QK_K};

use super::{layout_agrees, WeightType};

pub struct Q6K;

impl WeightType for Q6K {
    const DTYPE: DType = DType::Q6K;
    type Block = BlockQ6K;
    const BLOCK_LEN: usize = QK_K;
    // ggml pairs it with Q8K activations; no integer kernel here takes it yet, so f32.
    const VEC_DOT_TYPE: DType = DType::F32;

    fn dequantize(blocks: &[BlockQ6K], out: &mut [f32]) {
        for (block, chunk) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            block.dequantize(chunk);
        }
    }

    fn is_finite(block: &BlockQ6K) -> bool {
        block.d.is_finite()
    }
}

const _: () = assert!(layout_agrees::<Q6K>() && std::mem::size_of::<BlockQ6K>() == 210);
