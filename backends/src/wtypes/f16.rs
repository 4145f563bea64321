//! F16 weights: IEEE half precision, converted exactly.

use gg_ops::DType;
use half::f16;

use super::weight_type::{layout_agrees, PanelForm, WeightType};

pub struct F16;

impl WeightType for F16 {
    const DTYPE: DType = DType::F16;
    type Block = f16;
    const BLOCK_LEN: usize = 1;
    const VEC_DOT_TYPE: DType = DType::F16;

    fn dequantize(blocks: &[f16], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(blocks) {
            *o = v.to_f32();
        }
    }

    /// The fast precision rounds float weights to 16-bit blocks at load (see
    /// (`crate::fast::pack`)); the exact precision reads them as stored.
    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Wide);

    fn is_finite(v: &f16) -> bool {
        v.is_finite()
    }
}

const _: () = assert!(layout_agrees::<F16>() && std::mem::size_of::<f16>() == 2);
