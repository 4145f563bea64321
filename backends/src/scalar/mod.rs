//! The scalar kernel table: plain Rust, the specification of every op.

pub mod attention;
pub mod elementwise;
pub mod head;
pub mod matmul;

use crate::kernels::KernelTable;
use crate::rows::{self, ScalarRows};
use crate::Backend;

/// The int8 precision's specification, runnable everywhere.
static INT8: crate::fast::int8::Int8Support = crate::fast::int8::Int8Support {
    missing: || None,
    kernels: crate::fast::int8::int8_kernel_list!(crate::fast::int8::Scalar8, "scalar"),
};

/// The scalar table as a constant, so SIMD tables can take the ops they do not vectorize
/// from it (`..scalar::TABLE`).
pub const TABLE: KernelTable = KernelTable {
    backend: Backend::Scalar,
    // The registry's own entries are the scalar kernels.
    weight_kernels: &[],
    fast_kernels: crate::fast::fast_kernel_list!(crate::fast::scalar::Scalar, "scalar"),
    int8: Some(&INT8),
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
