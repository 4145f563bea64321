//! Kernel tables: what a tier runs for every op slot, and one row per weight type (ggml's
//! `type_traits_cpu`) with the type's exact, fast and int8 kernels on that tier.
//!
//! A tier is a type implementing [`Tier`]: its CPU token, its exact matmul kernels, its fast and
//! int8 integer kernels. Its rows are generated from the one list of weight types
//! ([`crate::wtypes::weight_type_list`]), so adding a type adds a row to every tier and adding a
//! tier writes no list of types. The scalar table is the specification; a SIMD tier's table
//! starts from it (`..scalar::TABLE`) and overrides the op slots it accelerates.

use gg_ops::{DType, PoolKind, UnaryOp, WeightView};

use crate::backend::Backend;
use crate::cpu::{self, CpuToken, Feature};
use crate::fast::int8::{self, Int8Tier};
use crate::fast::{self, FastKernels, FastTier};
use crate::kernels::{AttentionArgs, MatMulFn, Par, ResidualNormFn, RmsNormRopeFn, RopeFn, RowFn, SeqSpan};
use crate::wtypes::WeightType;

/// The exact precision's kernels of one tier for one weight type.
#[derive(Clone, Copy)]
pub struct WeightKernels {
    pub matmul: MatMulFn,
    /// `out (rows, f) = gelu_tanh(x · Wgᵀ) ⊙ (x · Wuᵀ)` where `W (2f, k)` stacks Wg over Wu.
    pub matmul_geglu: MatMulFn,
    pub dequantize_row: RowFn,
    /// Longest row (`k`) the matmul kernels take; lowering refuses longer ones at load.
    pub max_k: usize,
}

/// One weight type's kernels on one tier.
#[derive(Clone, Copy)]
pub struct TypeKernels {
    pub dtype: DType,
    /// The type's name in kernel names (`q8_0`).
    pub name: &'static str,
    pub exact: WeightKernels,
    /// The fast precision's integer kernels, if the type has a panel form.
    pub fast: Option<FastKernels>,
    /// The int8 precision's kernels, if the tier has them and the type has 8-bit quants.
    pub int8: Option<FastKernels>,
}

/// How a tier runs the exact precision's matmuls for any weight type (the scalar kernels, or
/// the shared drivers of [`crate::tiled`] over a tier's register tiles).
pub trait ExactKernels: 'static {
    const MAX_K: usize;
    fn matmul<W: WeightType>(
        x: crate::kernels::Activations<'_>,
        w: WeightView<'_>,
        out: &mut [f32],
        n: usize,
        par: Par,
    );
    fn matmul_geglu<W: WeightType>(
        x: crate::kernels::Activations<'_>,
        w: WeightView<'_>,
        out: &mut [f32],
        f: usize,
        par: Par,
    );
    fn dequantize_row<W: WeightType>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]);
}

/// A kernel tier: the features it needs (its token), its kernels per precision, its table.
pub trait Tier: Sized + 'static {
    const BACKEND: Backend;
    /// Proof of the CPU features every kernel of the tier needs.
    type Token: CpuToken;
    type Exact: ExactKernels;
    type Fast: FastTier;
    /// The int8 kernels (read only when [`Tier::INT8`] is some).
    type Int8: Int8Tier;
    /// Whether the tier has int8 kernels, and the features they need beyond the token's.
    const INT8: Option<&'static [Feature]>;
    /// One row per weight type, from the list.
    const TYPES: &'static [TypeKernels] = crate::wtypes::weight_type_list!(type_rows!(Self));
    /// The tier's table (handed out by [`crate::tiers`] only with a token).
    fn table() -> &'static KernelTable;
}

/// The row of `W` on tier `T`.
pub const fn type_row<W: WeightType, T: Tier>(name: &'static str) -> TypeKernels {
    TypeKernels {
        dtype: W::DTYPE,
        name,
        exact: WeightKernels {
            matmul: <T::Exact as ExactKernels>::matmul::<W>,
            matmul_geglu: <T::Exact as ExactKernels>::matmul_geglu::<W>,
            dequantize_row: <T::Exact as ExactKernels>::dequantize_row::<W>,
            max_k: <T::Exact as ExactKernels>::MAX_K,
        },
        fast: fast::kernels::<T::Fast, W>(),
        int8: match T::INT8 {
            Some(_) => int8::kernels8::<T::Int8, W>(),
            None => None,
        },
    }
}

/// The rows of a tier, one per entry of the weight-type list (its callback).
macro_rules! type_rows {
    ($tier:ty; $($variant:ident $module:ident $ty:ident $name:literal,)*) => {
        &[$($crate::table::type_row::<$crate::wtypes::$ty, $tier>($name),)*]
    };
}
pub(crate) use type_rows;

pub struct KernelTable {
    pub backend: Backend,
    /// One row per weight type.
    pub types: &'static [TypeKernels],
    /// Whether the int8 precision runs here, and the CPU features it needs (checked at
    /// lowering).
    pub int8: Option<&'static [Feature]>,
    /// In place: `x += rmsnorm(a) ⊙ w` per row of `w.len()` columns.
    pub add_rms_norm: fn(x: &mut [f32], a: &[f32], w: &[f32], eps: f32, par: Par),
    /// In place on rows of `2C`: `s = x[..C] + rmsnorm(a) ⊙ w1`, then `x = [s | rmsnorm(s) ⊙ w2]`.
    pub residual_norm: ResidualNormFn,
    /// In place: every `group` columns of each row normalized, times `w`.
    pub rms_norm: fn(x: &mut [f32], w: &[f32], group: usize, eps: f32, par: Par),
    pub rope: RopeFn,
    pub rms_norm_rope: RmsNormRopeFn,
    pub attention: fn(args: AttentionArgs<'_>, par: Par),
    pub gelu: fn(x: &mut [f32]),
    pub add: fn(x: &mut [f32], y: &[f32]),
    pub mul: fn(x: &mut [f32], y: &[f32]),
    pub scale: fn(x: &mut [f32], factor: f32),
    /// In place, per row of `cols`.
    pub l2_norm: fn(x: &mut [f32], cols: usize),
    /// `out (T, cols) = table[ids] · scale`, rows decoded by `row` (ids checked by the caller).
    pub embed: fn(ids: &[i32], table: WeightView<'_>, row: RowFn, scale: f32, out: &mut [f32]),
    /// `out (S, cols)` from `x (T, cols)`.
    pub pool: fn(x: &[f32], cols: usize, seqs: &[SeqSpan], kind: PoolKind, out: &mut [f32]),
    /// For each row: `width` values from column `x_start` of `x (R, x_cols)` into the first
    /// `width` columns of `out (R, out_cols)` (a column slice, or a copy into a wider row).
    pub copy_cols: fn(x: &[f32], x_cols: usize, x_start: usize, out: &mut [f32], out_cols: usize, width: usize),
    /// In place per row of `w.len()`: layer normalization, times `w`, plus `b`.
    pub layer_norm: fn(x: &mut [f32], w: &[f32], b: &[f32], eps: f32),
    /// In place: `b` added to every row of `b.len()` columns.
    pub add_bias: fn(x: &mut [f32], b: &[f32]),
    pub unary: fn(x: &mut [f32], op: UnaryOp),
    /// In place, per row of `cols`.
    pub softmax: fn(x: &mut [f32], cols: usize),
    /// `out (R, ca + cb)` = rows of `a (R, ca)` and `b (R, cb)` side by side.
    pub concat_cols: fn(a: &[f32], ca: usize, b: &[f32], cb: usize, out: &mut [f32]),
}

impl KernelTable {
    /// The row of a weight type; `None` for a type no kernel knows.
    pub fn row(&self, dtype: DType) -> Option<&'static TypeKernels> {
        self.types.iter().find(|r| r.dtype == dtype)
    }

    /// The exact kernels for a weight type on this tier.
    pub fn weight(&self, dtype: DType) -> Option<&'static WeightKernels> {
        self.row(dtype).map(|r| &r.exact)
    }

    /// The fast kernels for a weight type on this tier, if the type has any.
    pub fn fast(&self, dtype: DType) -> Option<&'static FastKernels> {
        self.row(dtype)?.fast.as_ref()
    }

    /// The int8 kernels for `dtype` weights, if the tier has them for that type.
    pub fn int8(&self, dtype: DType) -> Option<&'static FastKernels> {
        self.int8?;
        self.row(dtype)?.int8.as_ref()
    }

    /// Why the int8 precision cannot run here: the tier has no int8 kernels (`Err(None)`), or
    /// this CPU lacks a feature they need (`Err(Some(name))`).
    pub fn int8_available(&self) -> Result<(), Option<&'static str>> {
        match self.int8 {
            None => Err(None),
            Some(needs) => match cpu::missing(needs).first() {
                Some(f) => Err(Some(f)),
                None => Ok(()),
            },
        }
    }

    /// `tier.name`, for the kernels of a weight type in messages.
    pub fn kernel_name(&self, dtype: DType) -> String {
        let ty = self.row(dtype).map_or("?", |r| r.name);
        format!("{}.{ty}", self.backend.name())
    }
}
