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

use crate::kernels::KernelTable;
use crate::rows as row_ops;
use crate::scalar::{self, attention};
use crate::Backend;

/// Proof that this CPU has NEON (every aarch64 CPU does; the token keeps the tiers alike).
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _private: (),
}

impl Neon {
    pub const FEATURES: &'static [&'static str] = &["neon"];

    pub fn detect() -> Option<Neon> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon { _private: () })
    }
}

/// Which of the tier's features this CPU lacks.
pub fn missing_features() -> Vec<&'static str> {
    if Neon::detect().is_some() {
        Vec::new()
    } else {
        vec!["neon"]
    }
}

pub fn table(_: Neon) -> &'static KernelTable {
    &KERNELS
}

pub(crate) fn cpu() -> Neon {
    Neon::detect().expect("the NEON table is only reachable on a CPU with NEON")
}

fn attention(args: crate::kernels::AttentionArgs<'_>, par: crate::kernels::Par) {
    attention::attention_with(simd::NeonOps::new(cpu()), args, par)
}

static KERNELS: KernelTable = KernelTable {
    backend: Backend::Neon,
    weight_kernels: crate::tiled::weight_kernel_list!(
        matmul::NeonTiles,
        "neon",
        f16: crate::tiled::Spec<crate::wtypes::F16>,
        bf16: matmul::Bf16Rows,
        q8_0: matmul::Q8Rows
    ),
    fast_kernels: crate::fast::fast_kernel_list!(fast::NeonFast, "neon"),
    int8: None,
    attention,
    add_rms_norm: row_ops::add_rms_norm::<rows::NeonRowOps>,
    residual_norm: row_ops::residual_norm::<rows::NeonRowOps>,
    rms_norm: row_ops::rms_norm::<rows::NeonRowOps>,
    rope: row_ops::rope::<rows::NeonRowOps>,
    rms_norm_rope: row_ops::rms_norm_rope::<rows::NeonRowOps>,
    ..scalar::TABLE
};
