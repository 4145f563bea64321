//! What moves rows without computing on them: the batch's inputs (copied in by the executor),
//! the embedding gather, column slices, and the copy that gives an in-place op its input when
//! the plan could not hand it the input's buffer.

use gg_ops::InputKind;

use super::node::{Binder, LowerError, Lowered, Node};
use crate::program::{f32s, f32s_mut, i32s, ExecError, Operands, Val};

/// A batch input: no step; the executor copies the batch's ids or positions into its value.
pub fn input(kind: InputKind) -> Lowered {
    Lowered::new(move |b| {
        let operands = Operands::check(b.out, &[], None, b.plan).map_err(|what| gg_graph::GraphError::Invalid {
            label: b.graph.node(b.node).label.clone(),
            what,
        })?;
        b.parts.inputs.push((kind, operands));
        Ok(())
    })
}

pub fn embed(node: &Node<'_>, scale: f32) -> Result<Lowered, LowerError> {
    node.want_input(0, InputKind::TokenIds)?;
    node.want_weight(1)?;
    let decode = node.weight_kernels(1)?.dequantize_row;
    let embed = node.table.embed;
    Ok(Lowered::new(move |b| {
        let w = b.weight(1);
        let name = format!("embed<{}>", b.weight_type(1));
        b.step(&name, &[0], move |c, v| {
            let view = c.weights.view(w);
            let ids = i32s(v.reads[0]);
            let vocab = view.rows();
            if let Some((row, &id)) = ids.iter().enumerate().find(|(_, &id)| id < 0 || id as usize >= vocab) {
                return Err(ExecError::TokenOutOfRange { row, id, vocab });
            }
            embed(ids, view, decode, scale, f32s_mut(v.out));
            Ok(())
        })
    }))
}

pub fn slice_cols(node: &Node<'_>, start: usize, len: usize) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    let copy = node.table.copy_cols;
    Ok(Lowered::new(move |b| {
        let x_cols = b.value(0).cols;
        b.step("copy_cols", &[0], move |_, v| {
            copy(f32s(v.reads[0]), x_cols, start, f32s_mut(v.out), len, len);
            Ok(())
        })
    }))
}

/// Before an in-place op whose output did not get its input's buffer: input 0 copied into the
/// output (as wide as both allow), so the op then works on its output.
pub fn input_into_output(b: &mut Binder<'_>) -> Result<(), LowerError> {
    let (x, out): (Val, Val) = (b.value(0), b.out);
    let width = x.cols.min(out.cols);
    let copy = b.table.copy_cols;
    b.push(
        "copy_cols",
        out,
        &[x],
        None,
        Box::new(move |_, v| {
            copy(f32s(v.reads[0]), x.cols, 0, f32s_mut(v.out), out.cols, width);
            Ok(())
        }),
    )
}
