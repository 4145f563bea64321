//! The AVX2 + FMA + F16C tier (x86_64). It starts from the scalar table and overrides the
//! matmuls of every weight type (f32 FMA register tiles over rows decoded once per token
//! tile), the fast precision's integer kernels, attention's vector primitives, the GeGLU
//! epilogue and the row-wise ops (RMSNorm, residual norms, RoPE: bit-identical to the scalar
//! specification).
//!
//! Nothing here runs without the feature check: the table is handed out only for an [`Avx2`]
//! token, which [`Avx2::detect`] makes only on a CPU with AVX2, FMA and F16C, and every safe
//! entry point asks for the token (or re-checks the cached detection) before it enters
//! `#[target_feature]` code.

pub(crate) mod fast;
pub(crate) mod matmul;
pub mod rows;
pub mod simd;

use std::sync::OnceLock;

use crate::kernels::KernelTable;
use crate::rows as row_ops;
use crate::scalar::{self, attention};
use crate::Backend;

/// Proof that this CPU has AVX2, FMA and F16C. Only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// The CPU features the tier needs, by name.
    pub const FEATURES: &'static [&'static str] = &["avx2", "fma", "f16c"];

    /// The token, if this CPU has every feature (detected once).
    pub fn detect() -> Option<Avx2> {
        static HAS: OnceLock<bool> = OnceLock::new();
        let has = *HAS.get_or_init(|| missing_features().is_empty());
        has.then_some(Avx2 { _private: () })
    }
}

/// Which of the tier's features this CPU lacks.
pub fn missing_features() -> Vec<&'static str> {
    let has = |f: &str| match f {
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "f16c" => std::arch::is_x86_feature_detected!("f16c"),
        _ => false,
    };
    Avx2::FEATURES.iter().copied().filter(|f| !has(f)).collect()
}

/// The tier's table, for a CPU that has it.
pub fn table(_: Avx2) -> &'static KernelTable {
    &KERNELS
}

fn attention(args: crate::kernels::AttentionArgs<'_>, par: crate::kernels::Par) {
    let ops = simd::Avx2Ops::new(cpu());
    attention::attention_with(ops, args, par)
}

/// The token inside kernels reached through the table (which needs one to be had).
fn cpu() -> Avx2 {
    Avx2::detect().expect("the AVX2 table is only reachable on a CPU with AVX2, FMA and F16C")
}

/// The tier's table as a constant, so a wider tier can start from it.
pub(crate) const TABLE: KernelTable = KernelTable {
    backend: Backend::Avx2,
    weight_kernels: crate::tiled::weight_kernel_list!(
        matmul::Avx2Tiles,
        "avx2",
        f16: matmul::F16Rows,
        bf16: matmul::Bf16Rows,
        q8_0: matmul::Q8Rows
    ),
    fast_kernels: crate::fast::fast_kernel_list!(fast::Avx2Fast, "avx2"),
    // 8-bit products are no faster than 16-bit ones on AVX2 (`vpmaddubsw` + `vpmaddwd` per 32
    // products, against one `vpmaddwd` per 16): no int8 kernels.
    int8: None,
    attention,
    add_rms_norm: row_ops::add_rms_norm::<rows::Avx2RowOps>,
    residual_norm: row_ops::residual_norm::<rows::Avx2RowOps>,
    rms_norm: row_ops::rms_norm::<rows::Avx2RowOps>,
    rope: row_ops::rope::<rows::Avx2RowOps>,
    rms_norm_rope: row_ops::rms_norm_rope::<rows::Avx2RowOps>,
    ..scalar::TABLE
};

static KERNELS: KernelTable = TABLE;
