//! The AVX2 + FMA + F16C tier (x86_64). It starts from the scalar table and overrides the
//! matmuls of every weight type (f32 FMA register tiles over rows decoded once per token
//! tile), the fast precision's integer kernels, attention's vector primitives, the GeGLU
//! epilogue and the row-wise ops (RMSNorm, residual norms, RoPE: bit-identical to the scalar
//! specification).
//!
//! Nothing here runs without the feature check: the table is handed out only with an [`Avx2`]
//! token, which only detection makes on a CPU with AVX2, FMA and F16C, and every safe entry
//! point asks for the token before it enters `#[target_feature]` code.

pub mod fast;
pub(crate) mod matmul;
pub mod rows;
pub mod simd;
mod table;
mod token;

pub(crate) use table::TABLE;
pub use table::{without_vnni, Avx2Tier, KERNELS};
pub use token::Avx2;
