//! The AVX2 tier's table.

use super::fast::{Avx2Fast, Avx2MaddFast};
use super::matmul::Avx2Tiles;
use super::rows::Avx2RowOps;
use super::simd::Avx2Ops;
use super::token::Avx2;
use crate::backend::Backend;
use crate::cpu::{CpuToken, Feature};
use crate::kernels::{AttentionArgs, Par};
use crate::rows as row_ops;
use crate::scalar::{self, attention};
use crate::table::{KernelTable, Tier, TypeKernels};
use crate::tiled::Tiled;

pub struct Avx2Tier;

impl Tier for Avx2Tier {
    const BACKEND: Backend = Backend::Avx2;
    type Token = Avx2;
    type Exact = Tiled<Avx2Tiles>;
    type Fast = Avx2Fast;
    type Int8 = crate::fast::int8::Scalar8;
    /// No int8 kernels. With AVX2 alone 8-bit products are no faster than 16-bit ones
    /// (`vpmaddubsw` + `vpmaddwd` per 32 products, against one `vpmaddwd` per 16). With
    /// AVX-VNNI (`vpdpbusd` on ymm) they would be, and such kernels were written, bit-identical
    /// to the int8 specification, but the tier's whole passes missed the int8 precision's
    /// accuracy bar: on the 99 golden texts (Xeon with AVX-VNNI, 2026-12-07) the worst text,
    /// `edge/repeat_ab`, reached cos 0.99722 with the exact answer against llama.cpp's worst
    /// 0.99799 (the AVX-512 tier's int8: 0.99814). The int8 precision is that sensitive to the
    /// f32 rounding of the ops around the matmuls, in which the tiers differ.
    const INT8: Option<&'static [Feature]> = None;

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

fn attention(args: AttentionArgs<'_>, par: Par) {
    attention::attention_with(Avx2Ops::new(Avx2::get()), args, par)
}

/// The tier's table as a constant, so a wider tier can start from it.
pub(crate) const TABLE: KernelTable = KernelTable {
    backend: Backend::Avx2,
    types: Avx2Tier::TYPES,
    int8: Avx2Tier::INT8,
    attention,
    add_rms_norm: row_ops::add_rms_norm::<Avx2RowOps>,
    residual_norm: row_ops::residual_norm::<Avx2RowOps>,
    rms_norm: row_ops::rms_norm::<Avx2RowOps>,
    rope: row_ops::rope::<Avx2RowOps>,
    rms_norm_rope: row_ops::rms_norm_rope::<Avx2RowOps>,
    ..scalar::TABLE
};

pub static KERNELS: KernelTable = TABLE;

/// The tier held to `vpmaddwd` + `vpaddd` in its fast kernels whatever the CPU has, so the path
/// CPUs without AVX-VNNI take is tested on CPUs with it. Not a backend: only its rows are used.
struct WithoutVnni;

impl Tier for WithoutVnni {
    const BACKEND: Backend = Backend::Avx2;
    type Token = Avx2;
    type Exact = Tiled<Avx2Tiles>;
    type Fast = Avx2MaddFast;
    type Int8 = crate::fast::int8::Scalar8;
    const INT8: Option<&'static [Feature]> = None;

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

/// The AVX2 path without AVX-VNNI, one row per weight type (for parity tests and benches).
pub fn without_vnni() -> &'static [TypeKernels] {
    WithoutVnni::TYPES
}
