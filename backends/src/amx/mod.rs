//! The AMX tier (Intel Xeon since Sapphire Rapids): the AVX-512 tier with the fast and int8
//! precisions' matmuls on the matrix engine's tiles. A tile product sums 16 × 16 × 32 byte
//! products exactly in i32 — every 32-value block of every pair of a 16-token group and a
//! 16-row panel in one instruction — and the AVX-512 epilogue applies each block's scales in the
//! specification's f32 operations and order, so the vectors are the AVX-512 tier's bit for bit
//! (`backends/tests/amx_parity.rs`).
//!
//! Linux must grant a process the tile state before its first tile instruction
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, asked once by the feature probe); without the grant the
//! tier is unavailable and `--backend amx` names what is missing. Rust has no stable AMX
//! intrinsics: [`tile`] wraps the few instructions in `asm!`, beside a software model of them
//! that runs the same loops on any CPU in tests.

pub mod epilogue;
pub mod fast;
pub mod group;
pub mod int8;
mod table;
pub mod tile;
mod token;

pub use table::{AmxTier, KERNELS};
pub use token::Amx;
