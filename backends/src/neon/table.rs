//! The NEON tier's table.

use super::fast::NeonFast;
use super::matmul::NeonTiles;
use super::rows::NeonRowOps;
use super::simd::NeonOps;
use super::token::Neon;
use crate::backend::Backend;
use crate::cpu::{CpuToken, Feature};
use crate::kernels::{AttentionArgs, Par};
use crate::rows as row_ops;
use crate::scalar::{self, attention};
use crate::table::{KernelTable, Tier};
use crate::tiled::Tiled;

pub struct NeonTier;

impl Tier for NeonTier {
    const BACKEND: Backend = Backend::Neon;
    type Token = Neon;
    type Exact = Tiled<NeonTiles>;
    type Fast = NeonFast;
    type Int8 = crate::fast::int8::Scalar8;
    const INT8: Option<&'static [Feature]> = None;

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

fn attention(args: AttentionArgs<'_>, par: Par) {
    attention::attention_with(NeonOps::new(Neon::get()), args, par)
}

pub static KERNELS: KernelTable = KernelTable {
    backend: Backend::Neon,
    types: NeonTier::TYPES,
    int8: NeonTier::INT8,
    attention,
    add_rms_norm: row_ops::add_rms_norm::<NeonRowOps>,
    residual_norm: row_ops::residual_norm::<NeonRowOps>,
    rms_norm: row_ops::rms_norm::<NeonRowOps>,
    rope: row_ops::rope::<NeonRowOps>,
    rms_norm_rope: row_ops::rms_norm_rope::<NeonRowOps>,
    ..scalar::TABLE
};
