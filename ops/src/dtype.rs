//! Element types of values and weights.

use serde::{Deserialize, Serialize};

use crate::quant::{
    BlockIq3S, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0, QK4_0, QK4_NL, QK8_0, QK_K,
};

/// Element type of a weight or a value in the graph.
///
/// Quantized types are stored in blocks: a row of `n` elements of a blocked type occupies
/// `n / block_len() * block_bytes()` bytes, and `n` must be a multiple of the block length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    IQ4NL,
    IQ4XS,
    IQ3S,
    I32,
    /// Plain 8-bit integers (quantized activations, planned like any value).
    I8,
    /// Plain 16-bit integers (quantized activations).
    I16,
}

impl DType {
    /// Number of elements in one storage block (1 for plain types).
    pub const fn block_len(self) -> usize {
        match self {
            DType::Q8_0 => QK8_0,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => QK4_0,
            DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K | DType::Q6K | DType::IQ4XS | DType::IQ3S => QK_K,
            DType::IQ4NL => QK4_NL,
            _ => 1,
        }
    }

    /// Bytes of one storage block.
    pub const fn block_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 => 1,
            DType::Q8_0 => std::mem::size_of::<BlockQ8_0>(),
            DType::Q4_0 => std::mem::size_of::<BlockQ4_0>(),
            DType::Q4_1 => std::mem::size_of::<BlockQ4_1>(),
            DType::Q5_0 => std::mem::size_of::<BlockQ5_0>(),
            DType::Q5_1 => std::mem::size_of::<BlockQ5_1>(),
            DType::Q2K => std::mem::size_of::<BlockQ2K>(),
            DType::Q3K => std::mem::size_of::<BlockQ3K>(),
            DType::Q4K => std::mem::size_of::<BlockQ4K>(),
            DType::Q5K => std::mem::size_of::<BlockQ5K>(),
            DType::Q6K => std::mem::size_of::<BlockQ6K>(),
            DType::IQ4NL => std::mem::size_of::<BlockIq4Nl>(),
            DType::IQ4XS => std::mem::size_of::<BlockIq4Xs>(),
            DType::IQ3S => std::mem::size_of::<BlockIq3S>(),
        }
    }

    /// Alignment a buffer of this type needs (its widest scalar field).
    pub const fn align(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            // Every block starts with (or holds) f16 fields and has an even size.
            DType::Q8_0
            | DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q2K
            | DType::Q3K
            | DType::Q4K
            | DType::Q5K
            | DType::Q6K
            | DType::IQ4NL
            | DType::IQ4XS
            | DType::IQ3S => 2,
            DType::I8 => 1,
        }
    }

    /// Bytes taken by `n` elements, or `None` when `n` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Whether weights may be stored in this type (every float or quantized type; the
    /// integer types are activations and batch inputs). Which weight types have kernels is
    /// the backends' registry's to say, at lowering.
    pub const fn is_weight_type(self) -> bool {
        !matches!(self, DType::I32 | DType::I8 | DType::I16)
    }

    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q2K => "q2_k",
            DType::Q3K => "q3_k",
            DType::Q4K => "q4_k",
            DType::Q5K => "q5_k",
            DType::Q6K => "q6_k",
            DType::IQ4NL => "iq4_nl",
            DType::IQ4XS => "iq4_xs",
            DType::IQ3S => "iq3_s",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::I16 => "i16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(DType::Q8_0.bytes_for(64), Some(68));
        assert_eq!(DType::Q8_0.bytes_for(33), None);
        assert_eq!(DType::F16.bytes_for(3), Some(6));
        assert_eq!(DType::F32.bytes_for(usize::MAX), None);
        assert_eq!(DType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(DType::Q4K.bytes_for(512), Some(288));
        assert_eq!(DType::Q6K.bytes_for(256), Some(210));
        assert_eq!(DType::Q5K.bytes_for(1152), None);
        assert_eq!(DType::IQ4NL.bytes_for(1152), Some(648));
        assert_eq!(DType::IQ4XS.bytes_for(768), Some(408));
        assert_eq!(DType::Q2K.bytes_for(768), Some(252));
        assert_eq!(DType::Q3K.bytes_for(768), Some(330));
        assert_eq!(DType::IQ3S.bytes_for(768), Some(330));
    }
}
