//! The NEON tier (aarch64, where Advanced SIMD is always present). It starts from the scalar
//! table and overrides the fast precision's integer kernels for every quantized type (16-bit
//! widening multiply-accumulate over the packed panels, all three forms), the exact
//! precision's matmuls (4-token × 2-row FMA tiles over rows decoded once per token tile; Q8_0
//! and BF16 decoded with NEON), attention's vector primitives (4-lane FMA, two chains summed in
//! the scalar kernel's order) and the row-wise ops (bit-identical to the specification).
//!
//! `sdot` (the dotprod extension) multiplies 8-bit pairs only; the fast precision's 16-bit
//! activations use `smlal` instead, so the tier does not need dotprod.

pub mod fast;
pub mod matmul;
pub mod rows;
pub mod simd;
mod table;
mod token;

pub use table::{NeonTier, KERNELS};
pub use token::Neon;
