//! The AVX2 + FMA kernel table (x86_64). Matmuls and attention's dot products are
//! vectorized; the row-wise ops (norms, RoPE, GELU...) are memory-bound and use the scalar
//! specification directly.

mod matmul;
pub mod simd;

use crate::kernels::KernelTable;
use crate::scalar::{self, attention};
use crate::Backend;

/// Whether this CPU has what the AVX2 table needs (AVX2, FMA, F16C).
pub fn is_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

pub static KERNELS: KernelTable = KernelTable {
    backend: Backend::Avx2,
    matmul: matmul::matmul,
    matmul_geglu: matmul::matmul_geglu,
    attention: attention::attention_with::<simd::Avx2Ops>,
    ..scalar::TABLE
};
