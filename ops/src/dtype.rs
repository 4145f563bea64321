//! Element types of values and weights.

use serde::{Deserialize, Serialize};

use crate::quant::{BlockQ8_0, QK8_0};

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
        }
    }

    /// Alignment a buffer of this type needs (its widest scalar field).
    pub const fn align(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::Q8_0 => 2,
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
    }
}
