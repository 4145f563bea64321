//! The AVX2 tier's table.

use super::fast::Avx2Fast;
use super::matmul::Avx2Tiles;
use super::rows::Avx2RowOps;
use super::simd::Avx2Ops;
use super::token::Avx2;
use crate::backend::Backend;
use crate::cpu::{CpuToken, Feature};
use crate::kernels::{AttentionArgs, Par};
use crate::rows as row_ops;
use crate::scalar::{self, attention};
use crate::table::{KernelTable, Tier};
use crate::tiled::Tiled;

pub struct Avx2Tier;

impl Tier for Avx2Tier {
    const BACKEND: Backend = Backend::Avx2;
    type Token = Avx2;
    type Exact = Tiled<Avx2Tiles>;
    type Fast = Avx2Fast;
    type Int8 = crate::fast::int8::Scalar8;
    /// 8-bit products are no faster than 16-bit ones with AVX2 alone (`vpmaddubsw` + `vpmaddwd`
    /// per 32 products, against one `vpmaddwd` per 16): no int8 kernels.
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
