//! Row-wise and element-wise ops, all in place on input 0: the norms (alone, added to a
//! residual, the residual + norm pair, layer norm), GELU and the head's activations, add, mul,
//! scale, bias, L2 normalization and softmax. Each runs its table slot.

use gg_ops::UnaryOp;

use super::node::{LowerError, Lowered, Node};
use crate::program::{f32s, f32s_mut};

pub fn rms_norm(node: &Node<'_>, eps: f32, group: usize) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    node.want_f32_weight(1)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let w = b.weight(1);
        b.step("rms_norm", &[], move |c, v| {
            (table.rms_norm)(f32s_mut(v.out), c.weights.f32(w), group, eps, c.par);
            Ok(())
        })
    }))
}

pub fn add_rms_norm(node: &Node<'_>, eps: f32) -> Result<Lowered, LowerError> {
    node.want_values([0, 1])?;
    node.want_f32_weight(2)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let w = b.weight(2);
        b.step("add_rms_norm", &[1], move |c, v| {
            (table.add_rms_norm)(f32s_mut(v.out), f32s(v.reads[0]), c.weights.f32(w), eps, c.par);
            Ok(())
        })
    }))
}

pub fn residual_norm(node: &Node<'_>, eps: f32) -> Result<Lowered, LowerError> {
    node.want_values([0, 1])?;
    node.want_f32_weight(2)?;
    node.want_f32_weight(3)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let (w1, w2) = (b.weight(2), b.weight(3));
        b.step("residual_norm", &[1], move |c, v| {
            let (w1, w2) = (c.weights.f32(w1), c.weights.f32(w2));
            (table.residual_norm)(f32s_mut(v.out), f32s(v.reads[0]), w1, w2, eps, c.par);
            Ok(())
        })
    }))
}

pub fn layer_norm(node: &Node<'_>, eps: f32) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    node.want_f32_weight(1)?;
    node.want_f32_weight(2)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let (w, bias) = (b.weight(1), b.weight(2));
        b.step("layer_norm", &[], move |c, v| {
            (table.layer_norm)(f32s_mut(v.out), c.weights.f32(w), c.weights.f32(bias), eps);
            Ok(())
        })
    }))
}

pub fn add_bias(node: &Node<'_>) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    node.want_f32_weight(1)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let bias = b.weight(1);
        b.step("add_bias", &[], move |c, v| {
            (table.add_bias)(f32s_mut(v.out), c.weights.f32(bias));
            Ok(())
        })
    }))
}

/// `x ∘= y` for the two-operand slots (`add`, `mul`).
pub fn binary(node: &Node<'_>, name: &'static str, f: fn(&mut [f32], &[f32])) -> Result<Lowered, LowerError> {
    node.want_values([0, 1])?;
    Ok(Lowered::new(move |b| {
        b.step(name, &[1], move |_, v| {
            f(f32s_mut(v.out), f32s(v.reads[0]));
            Ok(())
        })
    }))
}

/// An op of one operand, in place: `f(x, cols)` with the output's width.
pub fn unary_slot(
    node: &Node<'_>,
    name: &'static str,
    f: impl Fn(&mut [f32], usize) + Send + Sync + 'static,
) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    Ok(Lowered::new(move |b| {
        let cols = b.out.cols;
        b.step(name, &[], move |_, v| {
            f(f32s_mut(v.out), cols);
            Ok(())
        })
    }))
}

pub fn gelu(node: &Node<'_>) -> Result<Lowered, LowerError> {
    let gelu = node.table.gelu;
    unary_slot(node, "gelu", move |x, _| gelu(x))
}

pub fn scale(node: &Node<'_>, factor: f32) -> Result<Lowered, LowerError> {
    let scale = node.table.scale;
    unary_slot(node, "scale", move |x, _| scale(x, factor))
}

pub fn l2_norm(node: &Node<'_>) -> Result<Lowered, LowerError> {
    unary_slot(node, "l2_norm", node.table.l2_norm)
}

pub fn softmax(node: &Node<'_>) -> Result<Lowered, LowerError> {
    unary_slot(node, "softmax", node.table.softmax)
}

pub fn unary(node: &Node<'_>, op: UnaryOp) -> Result<Lowered, LowerError> {
    let unary = node.table.unary;
    unary_slot(node, node.op().name(), move |x, _| unary(x, op))
}
