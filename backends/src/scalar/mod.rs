//! The scalar tier: plain Rust, the specification of every op, and the table every SIMD tier
//! starts from.

pub mod attention;
pub mod elementwise;
pub mod head;
pub mod matmul;

use crate::backend::Backend;
use crate::cpu::{CpuToken, Feature};
use crate::rows::{self, ScalarRows};
use crate::table::{KernelTable, Tier};

/// Every CPU runs the scalar tier.
#[derive(Clone, Copy, Debug)]
pub struct Scalar;

impl CpuToken for Scalar {
    const TIER: &'static str = "scalar";
    const NEEDS: &'static [Feature] = &[];

    unsafe fn assume() -> Scalar {
        Scalar
    }
}

pub struct ScalarTier;

impl Tier for ScalarTier {
    const BACKEND: Backend = Backend::Scalar;
    type Token = Scalar;
    type Exact = matmul::ScalarExact;
    type Fast = crate::fast::scalar::Scalar;
    type Int8 = crate::fast::int8::Scalar8;
    /// The int8 precision's specification runs everywhere.
    const INT8: Option<&'static [Feature]> = Some(&[]);

    fn table() -> &'static KernelTable {
        &KERNELS
    }
}

/// The scalar table as a constant, so SIMD tables can take the ops they do not vectorize
/// from it (`..scalar::TABLE`).
pub const TABLE: KernelTable = KernelTable {
    backend: Backend::Scalar,
    types: ScalarTier::TYPES,
    int8: ScalarTier::INT8,
    add_rms_norm: rows::add_rms_norm::<ScalarRows>,
    residual_norm: rows::residual_norm::<ScalarRows>,
    rms_norm: rows::rms_norm::<ScalarRows>,
    rope: rows::rope::<ScalarRows>,
    rms_norm_rope: rows::rms_norm_rope::<ScalarRows>,
    attention: attention::attention,
    gelu: elementwise::gelu,
    add: elementwise::add,
    mul: elementwise::mul,
    scale: elementwise::scale,
    l2_norm: elementwise::l2_norm,
    embed: elementwise::embed,
    pool: elementwise::pool,
    copy_cols: elementwise::copy_cols,
    layer_norm: head::layer_norm,
    add_bias: head::add_bias,
    unary: head::unary,
    softmax: head::softmax,
    concat_cols: head::concat_cols,
};

pub static KERNELS: KernelTable = TABLE;
