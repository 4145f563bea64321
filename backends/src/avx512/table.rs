//! The AVX-512 tier's table: the AVX2 table with its own matmul tiles, integer kernels and
//! attention.

use super::attention::Avx512Ops;
use super::fast::{Avx512BwFast, Avx512Fast};
use super::int8::Avx512Int8;
use super::matmul::Avx512Tiles;
use super::token::Avx512;
use crate::avx2;
use crate::backend::Backend;
use crate::cpu::{CpuToken, Feature};
use crate::kernels::{AttentionArgs, Par};
use crate::table::{KernelTable, Tier, TypeKernels};
use crate::tiled::Tiled;

pub struct Avx512Tier;

impl Tier for Avx512Tier {
    const BACKEND: Backend = Backend::Avx512;
    type Token = Avx512;
    type Exact = Tiled<Avx512Tiles>;
    type Fast = Avx512Fast;
    type Int8 = Avx512Int8;
    const INT8: Option<&'static [Feature]> = Some(&[Feature::Avx512vnni]);

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

fn attention(args: AttentionArgs<'_>, par: Par) {
    crate::scalar::attention::attention_with(Avx512Ops::new(Avx512::get()), args, par)
}

/// The tier's table as a constant, so a wider tier can start from it.
pub(crate) const TABLE: KernelTable = KernelTable {
    backend: Backend::Avx512,
    types: Avx512Tier::TYPES,
    int8: Avx512Tier::INT8,
    attention,
    ..avx2::TABLE
};

pub static KERNELS: KernelTable = TABLE;

/// The tier held to `vpmaddwd` + `vpaddd` in its fast kernels whatever the CPU has, so the path
/// CPUs without VNNI take is tested on CPUs with it. Not a backend: only its rows are used.
struct WithoutVnni;

impl Tier for WithoutVnni {
    const BACKEND: Backend = Backend::Avx512;
    type Token = Avx512;
    type Exact = Tiled<Avx512Tiles>;
    type Fast = Avx512BwFast;
    type Int8 = Avx512Int8;
    const INT8: Option<&'static [Feature]> = None;

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

/// The AVX-512BW path without VNNI, one row per weight type (for parity tests and benches).
pub fn without_vnni() -> &'static [TypeKernels] {
    WithoutVnni::TYPES
}
