//! F32 weights: stored as they are used.

use gg_ops::DType;

use super::weight_type::{layout_agrees, PanelForm, WeightType};

pub struct F32;

impl WeightType for F32 {
    const DTYPE: DType = DType::F32;
    type Block = f32;
    const BLOCK_LEN: usize = 1;
    const VEC_DOT_TYPE: DType = DType::F32;

    fn dequantize(blocks: &[f32], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }

    /// The fast precision rounds float weights to 16-bit blocks at load (see
    /// (`crate::fast::pack`)); the exact precision reads them as stored.
    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Wide);

    fn is_finite(v: &f32) -> bool {
        v.is_finite()
    }
}

const _: () = assert!(layout_agrees::<F32>() && std::mem::size_of::<f32>() == 4);
