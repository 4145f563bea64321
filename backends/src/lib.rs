//! Kernels, lowering and the executor. The scalar table is the specification; SIMD tiers
//! (AVX2, AVX-512 on x86_64, NEON on aarch64) start from it and override the slots they
//! accelerate, chosen at run time. All `cfg(target_arch)`, `target_feature` and SIMD `unsafe`
//! of the project live in this crate.
//!
//! The modules, from the bottom up (no module imports one above it; `tests/layering.rs` checks
//! there are no cycles): the shared vocabulary (`kernels`, `math`, `backend`, `cpu`, `os`), the
//! threads (`team`, `split`), the weight types (`wtypes`), the row-wise ops (`rows`), the scalar
//! specification (`scalar`), the fast and int8 integer kernels (`fast`), the exact matmul drivers
//! (`tiled`), the tables (`table`), the SIMD tiers (`avx2`, `avx512`, `amx`, `neon`), the list of tiers
//! (`tiers`), the weight table (`weights`), the program and its executor (`program`), lowering
//! (`lower`). Adding a tier: its module implementing `table::Tier` and a line in `tiers`.

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod backend;
pub mod composite;
pub mod cpu;
pub mod fast;
pub mod kernels;
pub mod lower;
pub mod math;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod os;
pub mod program;
pub mod rows;
pub mod scalar;
mod split;
pub mod table;
pub mod team;
pub mod tiers;
pub mod tiled;
pub mod weights;
pub mod wtypes;

pub use backend::{Backend, Precision, Unavailable};
pub use gg_ops::WeightView;
pub use kernels::{Activations, Par, SeqSpan};
pub use lower::LowerError;
pub use program::{Arena, Batch, ExecError, OutputSlot, Program, Step, StepTimes};
pub use table::{KernelTable, Tier, TypeKernels, WeightKernels};
pub use team::Team;
pub use tiers::{backend_from_env, best_backend, cpu_features};
pub use weights::{ByteSource, NonFinite, PackSpec, Prepared, Weight, WeightBytes, WeightTable};
