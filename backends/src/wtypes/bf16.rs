//! BF16 weights: the top 16 bits of an f32, converted exactly.

use gg_ops::DType;
use half::bf16;

use super::weight_type::{layout_agrees, PanelForm, WeightType};

pub struct Bf16;

impl WeightType for Bf16 {
    const DTYPE: DType = DType::BF16;
    type Block = bf16;
    const BLOCK_LEN: usize = 1;
    const VEC_DOT_TYPE: DType = DType::BF16;

    fn dequantize(blocks: &[bf16], out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(blocks) {
            *o = v.to_f32();
        }
    }

    /// The fast precision rounds float weights to 16-bit blocks at load (see
    /// (`crate::fast::pack`)); the exact precision reads them as stored.
    const PANEL_FORM: Option<PanelForm> = Some(PanelForm::Wide);

    fn is_finite(v: &bf16) -> bool {
        v.is_finite()
    }
}

const _: () = assert!(layout_agrees::<Bf16>() && std::mem::size_of::<bf16>() == 2);
