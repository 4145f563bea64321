//! The AVX-512 tier (x86_64 with AVX-512F/BW/VL beside AVX2, FMA and F16C). It starts from
//! the AVX2 table and overrides the matmul register tiles (8 tokens × 2 rows of 16-lane FMA),
//! the fast and int8 integer kernels and attention's primitives; the row decoders, the GeGLU
//! epilogue and the row-wise ops are the AVX2 tier's.
//!
//! As for AVX2, nothing here runs without the feature check: the table is handed out only with
//! an [`Avx512`] token, which only detection makes, on a CPU with every feature.

pub mod attention;
pub mod fast;
pub mod int8;
pub(crate) mod matmul;
mod table;
mod token;

pub(crate) use table::TABLE;
pub use table::{without_vnni, Avx512Tier, KERNELS};
pub use token::Avx512;
