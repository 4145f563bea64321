//! Weight types, one file each (ggml's type traits, candle's `GgmlType`), implementing
//! [`WeightType`], and the one list of them ([`weight_type_list`]) that every table is made
//! from: [`SPECS`] here, and each tier's rows of exact, fast and int8 kernels
//! (`crate::table::Tier::TYPES`).
//!
//! Adding a weight type: its file here, its line in [`weight_type_list`] (plus its `DType`
//! variant in `gg-ops` and its GGUF code in the loader).

mod weight_type;

use gg_ops::{DType, WeightView};

use crate::kernels::RowFn;

pub use self::weight_type::{
    dequantize_row, first_non_finite, has_offsets, is_halves, layout_agrees, PanelForm, SubBlock, WeightType, HALVES,
    HALVES_OFFSET, OFFSET, SUB_BLOCK, SYMMETRIC, WIDE,
};

/// Every weight type with kernels, written once: `DType` variant, the file (module) it is in, the
/// type, its name. Hands the list to the callback `$m! { args…; VARIANT module Type "name", … }`,
/// which makes a table of it (or, here, declares the modules).
macro_rules! weight_type_list {
    ($m:ident!($($args:tt)*)) => {
        $m! { $($args)*;
            F32 f32 F32 "f32",
            F16 f16 F16 "f16",
            BF16 bf16 Bf16 "bf16",
            Q8_0 q8_0 Q8_0 "q8_0",
            Q4_0 q4_0 Q4_0 "q4_0",
            Q4_1 q4_1 Q4_1 "q4_1",
            Q5_0 q5_0 Q5_0 "q5_0",
            Q5_1 q5_1 Q5_1 "q5_1",
            Q2K q2_k Q2K "q2_k",
            Q3K q3_k Q3K "q3_k",
            Q4K q4_k Q4K "q4_k",
            Q5K q5_k Q5K "q5_k",
            Q6K q6_k Q6K "q6_k",
            IQ4NL iq4_nl Iq4Nl "iq4_nl",
            IQ4XS iq4_xs Iq4Xs "iq4_xs",
            IQ3S iq3_s Iq3S "iq3_s",
        }
    };
}
pub(crate) use weight_type_list;

/// Each type's module and its re-export.
macro_rules! type_modules {
    (; $($variant:ident $module:ident $ty:ident $name:literal,)*) => {
        $(
            mod $module;
            pub use self::$module::$ty;
        )*
    };
}

weight_type_list!(type_modules!());

/// What every tier shares of a weight type: the specification.
pub struct TypeSpec {
    pub dtype: DType,
    pub name: &'static str,
    pub vec_dot_type: DType,
    /// [`first_non_finite`] for this type.
    pub first_non_finite: fn(WeightView<'_>) -> Option<usize>,
    /// [`dequantize_row`] for this type (the specification's decoder).
    pub dequantize_row: RowFn,
    /// How the integer precisions' panels hold it, if they can.
    pub panel_form: Option<PanelForm>,
}

const fn type_spec<W: WeightType>(name: &'static str) -> TypeSpec {
    TypeSpec {
        dtype: W::DTYPE,
        name,
        vec_dot_type: W::VEC_DOT_TYPE,
        first_non_finite: first_non_finite::<W>,
        dequantize_row: dequantize_row::<W>,
        panel_form: W::PANEL_FORM,
    }
}

macro_rules! type_specs {
    (; $($variant:ident $module:ident $ty:ident $name:literal,)*) => {
        &[$(type_spec::<$ty>($name),)*]
    };
}

/// Every weight type with kernels.
pub static SPECS: &[TypeSpec] = weight_type_list!(type_specs!());

/// The specification of a type, if it has kernels.
pub fn spec(dtype: DType) -> Option<&'static TypeSpec> {
    SPECS.iter().find(|s| s.dtype == dtype)
}
