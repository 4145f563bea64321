//! Scalar math every precision shares: the specification's formulas for one value.

/// GELU, tanh approximation (`gelu_pytorch_tanh`).
#[inline]
pub fn gelu_one(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}
