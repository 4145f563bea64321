//! The `fast` precision: integer dot products over quantized weight blocks.
//!
//! Activations are quantized per block of 32 values to 16-bit integers (scale `amax / 32767`),
//! weights keep the file's quants (8 bits or fewer), repacked once at load into panels of 16
//! rows ([`PackedQ8`]) in one of three lossless forms ([`pack::PanelForm`]). A block's 32
//! products are summed exactly in 32-bit integers; the sum is then scaled by `d_w · d_x` and
//! added to the row's f32 accumulator, block after block (per 16-value half for Q6_K's form;
//! and for the offset types `o_w · Σx` is added too, `Σx` being the block's quantized sum). So
//! every type computes its file's exact weights times the 16-bit activations. Every tier
//! computes exactly these operations in this order, so the result of a text depends neither on
//! the tier's tile sizes, its batch neighbours nor the thread count, and the SIMD tiers agree
//! with the scalar specification bit for bit.
//!
//! Why 16-bit activations: llama.cpp quantizes activations to 8 bits, which moves its vectors
//! to cosine 0.998 of the exact answer on the golden texts. 16-bit blocks keep the error
//! ~250× smaller, and on x86 a 16-bit × 16-bit `madd`/`vpdpwssd` covers as many products per
//! instruction as the 8-bit forms do.

pub mod drive;
pub mod int8;
pub mod pack;
pub mod qrows;
pub mod scalar;

pub use crate::wtypes::{PanelForm, HALVES, OFFSET, SYMMETRIC, WIDE};
pub use drive::{
    kernels, matmul, matmul_geglu, matmul_geglu_q, matmul_q, quantize_rows, FastKernels, FastTier, PackFn,
    PackedMatMulFn, QMatMulFn, QuantizeRowsFn,
};
pub use pack::{pack, PackedQ8, PANEL, PANEL_BLOCK_BYTES};
pub use qrows::{
    block_scales, block_scales_for, finite_amax, qrow_words, quantize_block, quantize_blocks, quantize_row, QRows,
    QTile, MAX_K, QBLOCK, QMAX, TOKEN_TILE,
};
