//! The AMX tier's table: the AVX-512 table with the integer precisions' matmuls on tiles.

use super::fast::AmxFast;
use super::int8::AmxInt8;
use super::token::Amx;
use crate::avx512;
use crate::backend::Backend;
use crate::cpu::Feature;
use crate::table::{KernelTable, Tier};
use crate::tiled::Tiled;

pub struct AmxTier;

impl Tier for AmxTier {
    const BACKEND: Backend = Backend::Amx;
    type Token = Amx;
    /// The exact precision's f32 matmuls are the AVX-512 tier's.
    type Exact = Tiled<crate::avx512::matmul::Avx512Tiles>;
    type Fast = AmxFast;
    type Int8 = AmxInt8;
    const INT8: Option<&'static [Feature]> = Some(&[]);

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

pub static KERNELS: KernelTable = KernelTable {
    backend: Backend::Amx,
    types: AmxTier::TYPES,
    int8: AmxTier::INT8,
    ..avx512::TABLE
};
