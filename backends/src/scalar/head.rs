//! Kernels of the ops pooling heads use on their (few) rows: layer norm, bias, element-wise
//! functions, softmax, concatenation. They run on one row per text, so the scalar code is
//! what every tier uses; it is the specification.

use gg_ops::UnaryOp;

/// In place per row of `w.len()` columns: `(x − mean) / sqrt(var + eps) ⊙ w + b`, the
/// population variance (torch's `LayerNorm`); moments summed in f64.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let cols = w.len();
    for row in x.chunks_exact_mut(cols) {
        let n = cols as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
            *v = ((f64::from(*v) - mean) * inv) as f32 * wi + bi;
        }
    }
}

/// In place: `b` added to every row of `b.len()` columns.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, &bi) in row.iter_mut().zip(b) {
            *v += bi;
        }
    }
}

/// One value of an element-wise function.
#[inline]
pub fn unary_one(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::GeluErf => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Relu => x.max(0.0),
    }
}

pub fn unary(x: &mut [f32], op: UnaryOp) {
    for v in x {
        *v = unary_one(op, *v);
    }
}

/// In place per row of `cols`: `exp(x − max) / Σ exp(x − max)` (the sum in f64).
pub fn softmax(x: &mut [f32], cols: usize) {
    for row in x.chunks_exact_mut(cols) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f64;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += f64::from(*v);
        }
        let inv = (1.0 / sum) as f32;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// `out (R, ca + cb)` = rows of `a (R, ca)` and `b (R, cb)` side by side.
pub fn concat_cols(a: &[f32], ca: usize, b: &[f32], cb: usize, out: &mut [f32]) {
    for ((o, ra), rb) in out
        .chunks_exact_mut(ca + cb)
        .zip(a.chunks_exact(ca))
        .zip(b.chunks_exact(cb))
    {
        o[..ca].copy_from_slice(ra);
        o[ca..].copy_from_slice(rb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn against_reference_values() {
        // torch.nn.functional values, printed with float64.
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-6;
        assert!(close(unary_one(UnaryOp::GeluErf, 1.0), 0.841_344_746_068_542_9));
        assert!(close(unary_one(UnaryOp::GeluErf, -2.0), -0.045_500_263_896_358_41));
        assert!(close(unary_one(UnaryOp::Silu, 1.5), 1.226_361_725_588_536));
        assert!(close(unary_one(UnaryOp::Tanh, 0.5), 0.462_117_157_260_009_76));
        assert_eq!(unary_one(UnaryOp::Relu, -3.0), 0.0);
        let mut x = [1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
        softmax(&mut x, 3);
        assert!(close(x[0], 0.090_030_573_170_380_46) && close(x[2], 0.665_240_955_774_821_6));
        assert!(
            x[3..].iter().all(|&p| close(p, 1.0 / 3.0)),
            "large inputs do not overflow"
        );
        let mut y = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut y, &[1.0, 1.0, 2.0, 1.0], &[0.0, 0.0, 0.0, 0.5], 1e-5);
        assert!(close(y[0], -1.341_635_846_533_225) && close(y[2], 2.0 * 0.447_211_948_844_408_3));
        assert!(close(y[3], 1.341_635_846_533_225 + 0.5));
        let mut out = [0.0; 6];
        concat_cols(&[1.0, 2.0], 1, &[3.0, 4.0, 5.0, 6.0], 2, &mut out);
        assert_eq!(out, [1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    }
}
