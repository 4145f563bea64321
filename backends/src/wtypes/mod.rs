//! Weight types, one file each (ggml's type traits, candle's `GgmlType`): the storage block
//! with `const` layout asserts, the dequantization that is the specification, the activation
//! type the integer kernels pair it with, and the scalar kernels made from them. SIMD tiers
//! override a type's kernels in their own table (`KernelTable::weight_kernels`).
//!
//! Adding a weight type: one new file here implementing [`WeightType`], and a registry line in
//! [`REGISTRY`] (plus its `DType` variant in `gg-ops` and its GGUF code in the loader).

mod bf16;
mod f16;
mod f32;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;

use gg_ops::{DType, WeightView};

use crate::fast::pack::{PanelForm, SubBlock};
use crate::kernels::{MatMulFn, RowFn};
use crate::scalar;

pub use self::bf16::Bf16;
pub use self::f16::F16;
pub use self::f32::F32;
pub use self::q4_0::Q4_0;
pub use self::q4_1::Q4_1;
pub use self::q4_k::Q4K;
pub use self::q5_0::Q5_0;
pub use self::q5_1::Q5_1;
pub use self::q5_k::Q5K;
pub use self::q6_k::Q6K;
pub use self::q8_0::Q8_0;

/// One weight type.
pub trait WeightType: Send + Sync + 'static {
    const DTYPE: DType;
    /// The storage unit: one block (`BLOCK_LEN` elements).
    type Block: bytemuck::Pod + Send + Sync;
    const BLOCK_LEN: usize;
    /// ggml's `vec_dot_type`: the blocks the integer kernels quantize activations in (for every
    /// quantized type here, 32-value blocks as Q8_0's, though to 16 bits: see [`crate::fast`]).
    const VEC_DOT_TYPE: DType;
    /// The specification: `blocks` to `out.len() == blocks.len() * BLOCK_LEN` values.
    fn dequantize(blocks: &[Self::Block], out: &mut [f32]);
    /// Whether a block holds only finite values (checked on the stored bits: scales for
    /// quantized types, every value for float types), so a load can refuse NaN/Inf weights
    /// without dequantizing everything.
    fn is_finite(block: &Self::Block) -> bool;
    /// How the fast precision's panels hold this type without loss, if they can.
    const PANEL_FORM: Option<PanelForm> = None;
    /// One block as `BLOCK_LEN / 32` panel sub-blocks, `value = scale · q + offset` exactly as
    /// [`WeightType::dequantize`] gives it. Called only when `PANEL_FORM` is some.
    fn panel_blocks(_block: &Self::Block, _out: &mut [SubBlock]) {
        unreachable!("{} has no panel form", Self::DTYPE)
    }
}

/// The index of the first block holding a NaN or an infinity, if any.
pub fn first_non_finite<W: WeightType>(w: WeightView<'_>) -> Option<usize> {
    w.cast::<W::Block>().iter().position(|b| !W::is_finite(b))
}

/// The block layout agrees with what the rest of the project (the graph's sizes, the GGUF
/// reader) believes about the type; every type file asserts it in a `const`.
pub const fn layout_agrees<W: WeightType>() -> bool {
    std::mem::size_of::<W::Block>() == W::DTYPE.block_bytes() && W::BLOCK_LEN == W::DTYPE.block_len()
}

/// Elements `k0..k0 + out.len()` of row `j`, by the type's specification.
pub fn dequantize_row<W: WeightType>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
    debug_assert!(k0.is_multiple_of(W::BLOCK_LEN) && out.len().is_multiple_of(W::BLOCK_LEN));
    let per_row = w.cols() / W::BLOCK_LEN;
    let first = j * per_row + k0 / W::BLOCK_LEN;
    W::dequantize(&w.cast::<W::Block>()[first..first + out.len() / W::BLOCK_LEN], out);
}

/// The kernels one tier runs for one weight type.
#[derive(Clone, Copy)]
pub struct WeightKernels {
    /// `tier.kernel<type>`, for `dump` and errors.
    pub name: &'static str,
    pub matmul: MatMulFn,
    /// `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)` where `W (2f, k)` stacks Wg over Wu.
    pub matmul_geglu: MatMulFn,
    pub dequantize_row: RowFn,
    /// Longest row (`k`) the matmul kernels take; lowering refuses longer ones at load.
    pub max_k: usize,
}

/// What the registry knows of a weight type.
pub struct WeightTypeInfo {
    pub dtype: DType,
    pub vec_dot_type: DType,
    /// [`first_non_finite`] for this type.
    pub first_non_finite: fn(WeightView<'_>) -> Option<usize>,
    /// The specification's kernels (the scalar tier).
    pub scalar: WeightKernels,
}

/// A registry entry for `W`, its scalar kernels instantiated from its dequantization.
pub const fn entry<W: WeightType>(name: &'static str) -> WeightTypeInfo {
    WeightTypeInfo {
        dtype: W::DTYPE,
        vec_dot_type: W::VEC_DOT_TYPE,
        first_non_finite: first_non_finite::<W>,
        scalar: WeightKernels {
            name,
            matmul: scalar::matmul::matmul::<W>,
            matmul_geglu: scalar::matmul::matmul_geglu::<W>,
            dequantize_row: dequantize_row::<W>,
            max_k: scalar::matmul::MAX_K,
        },
    }
}

/// Every weight type with kernels.
pub static REGISTRY: &[WeightTypeInfo] = &[
    entry::<F32>("scalar.f32"),
    entry::<F16>("scalar.f16"),
    entry::<Bf16>("scalar.bf16"),
    entry::<Q8_0>("scalar.q8_0"),
    entry::<Q4_0>("scalar.q4_0"),
    entry::<Q4_1>("scalar.q4_1"),
    entry::<Q5_0>("scalar.q5_0"),
    entry::<Q5_1>("scalar.q5_1"),
    entry::<Q4K>("scalar.q4_k"),
    entry::<Q5K>("scalar.q5_k"),
    entry::<Q6K>("scalar.q6_k"),
];

/// The registry entry of a type, if it has kernels.
pub fn info(dtype: DType) -> Option<&'static WeightTypeInfo> {
    REGISTRY.iter().find(|i| i.dtype == dtype)
}
