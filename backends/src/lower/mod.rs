//! Lowering: the chosen backend tier picks, for every node, a concrete kernel from (op, input
//! element types, weight type, tier), says what scratch it needs, and checks the kernel's
//! limits — all at load, so an unsupported combination or a shape past a limit is an error
//! naming the node, the op and the limit, never a panic at embed time. The plan is then made
//! with those scratch needs, and each step becomes a closure over fixed arena offsets that calls
//! its kernel: the executor (`crate::program`) is a plain loop.
//!
//! Each op family has a module holding its selection and its binding side by side: a family's
//! function checks a node and returns a [`node::Lowered`] (scratch, and the binding to run once
//! the plan exists). [`select`] routes every `Op` to its family with no catch-all, so a new op
//! does not compile until lowering handles it.

mod attention;
mod copy;
mod head;
mod matmul;
mod node;
mod rope;
mod rows;

use std::collections::HashMap;

use gg_graph::{Graph, GraphError, NodeId};
use gg_ops::{Op, WeightId};

use self::node::{Arg, Binder, Lowered, Node, Parts};
use crate::backend::Precision;
use crate::program::{OutputSlot, Program, Val};
use crate::table::KernelTable;

pub use self::head::MAX_DENSE;
pub use self::node::LowerError;

impl Program {
    /// Lower `graph` onto `table` for batches of up to `max_tokens` tokens in `max_seqs`
    /// sequences: kernels chosen (in `precision`) and limits checked per node, memory
    /// planned, steps bound.
    pub fn compile(
        graph: &Graph,
        table: &'static KernelTable,
        max_tokens: usize,
        max_seqs: usize,
        precision: Precision,
    ) -> Result<Program, LowerError> {
        graph.validate()?;
        check_precision(table, precision)?;
        let mut chosen = Vec::new();
        let mut scratch = HashMap::new();
        for n in graph.topo_order()? {
            if let Some(l) = select(&Node::new(graph, n, table, precision))? {
                if let Some(need) = l.scratch {
                    scratch.insert(n, need);
                }
                chosen.push((n, l));
            }
        }
        let plan = gg_graph::plan_with_scratch(graph, max_tokens, max_seqs, &scratch)?;
        let val = |n: NodeId| -> Result<Val, LowerError> {
            let slot = plan.slot(n).ok_or_else(|| GraphError::Invalid {
                label: graph.node(n).label.clone(),
                what: "the plan has no slot for it".into(),
            })?;
            let node = graph.node(n);
            Ok(Val {
                offset: slot.offset,
                dtype: node.dtype,
                rows: node.shape.rows,
                cols: node.shape.cols,
            })
        };
        let mut parts = Parts::default();
        for (n, lowered) in chosen {
            let args = graph
                .inputs(n)
                .into_iter()
                .map(|i| match graph.node(i).op {
                    Op::Weight(w) => Ok(Arg::Weight(w)),
                    _ => val(i).map(Arg::Value),
                })
                .collect::<Result<Vec<_>, LowerError>>()?;
            let scratch = lowered.scratch.zip(plan.scratch(n)).map(|(need, slot)| Val {
                offset: slot.offset,
                dtype: need.dtype,
                rows: need.shape.rows,
                cols: need.shape.cols,
            });
            let mut b = Binder {
                graph,
                node: n,
                table,
                plan: &plan,
                args,
                out: val(n)?,
                scratch,
                parts: &mut parts,
            };
            let in_place = plan.value(n).is_some_and(|v| v.in_place);
            if graph.node(n).op.in_place_input() == Some(0) && !in_place {
                copy::input_into_output(&mut b)?;
            }
            (lowered.bind)(&mut b)?;
        }
        let outputs = graph
            .outputs()
            .iter()
            .map(|&o| {
                Ok(OutputSlot {
                    node: o,
                    value: val(o)?,
                })
            })
            .collect::<Result<Vec<_>, LowerError>>()?;
        let mut repacked_only: Vec<WeightId> = parts
            .packs
            .iter()
            .map(|p| p.weight)
            .filter(|w| !parts.read_as_stored.contains(w))
            .collect();
        repacked_only.sort_unstable();
        repacked_only.dedup();
        Ok(Program {
            steps: parts.steps,
            packs: parts.packs,
            repacked_only,
            precision,
            inputs: parts.inputs,
            outputs,
            plan,
            backend: table.backend.name(),
        })
    }
}

/// The family that lowers each op: one arm per `Op` and no catch-all, so a new op does not
/// compile until it has one. Weights are no step (`None`).
fn select(node: &Node<'_>) -> Result<Option<Lowered>, LowerError> {
    let lowered = match *node.op() {
        Op::Weight(_) => return Ok(None),
        Op::Input(kind) => copy::input(kind),
        Op::Embed { scale } => copy::embed(node, scale)?,
        Op::SliceCols { start, len } => copy::slice_cols(node, start, len)?,
        Op::MatMul(spec) => matmul::matmul(node, spec)?,
        Op::Rope { base, head_dim } => attention::rope(node, base, head_dim)?,
        Op::RmsNormRope {
            eps,
            head_dim,
            base,
            cols,
        } => attention::rms_norm_rope(node, eps, head_dim, base, cols)?,
        Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            scale,
            window,
            packed,
        } => attention::attention(
            node,
            attention::Heads {
                n_heads,
                n_kv_heads,
                head_dim,
                scale,
                window,
                packed,
            },
        )?,
        Op::RmsNorm { eps, group } => rows::rms_norm(node, eps, group)?,
        Op::AddRmsNorm { eps } => rows::add_rms_norm(node, eps)?,
        Op::ResidualNorm { eps } => rows::residual_norm(node, eps)?,
        Op::LayerNorm { eps } => rows::layer_norm(node, eps)?,
        Op::AddBias => rows::add_bias(node)?,
        Op::Add => rows::binary(node, "add", node.table.add)?,
        Op::Mul => rows::binary(node, "mul", node.table.mul)?,
        Op::Gelu => rows::gelu(node)?,
        Op::Scale(factor) => rows::scale(node, factor)?,
        Op::L2Norm => rows::l2_norm(node)?,
        Op::Softmax => rows::softmax(node)?,
        Op::Unary(op) => rows::unary(node, op)?,
        Op::Pool(kind) => head::pool(node, kind)?,
        Op::ConcatCols => head::concat_cols(node)?,
        Op::PoolHead {
            kind,
            n_dense,
            normalize,
        } => head::pool_head(node, kind, n_dense, normalize)?,
    };
    Ok(Some(lowered))
}

/// Whether the tier can run `precision` on this CPU (int8 needs kernels of its own).
fn check_precision(table: &KernelTable, precision: Precision) -> Result<(), LowerError> {
    if precision != Precision::Int8 {
        return Ok(());
    }
    let err = |what: String| LowerError::Precision {
        precision: precision.name(),
        backend: table.backend.name(),
        what,
    };
    match table.int8_available() {
        Ok(()) => Ok(()),
        Err(None) => Err(err(
            "this tier has no int8 kernels (8-bit products are no faster than the fast precision's 16-bit ones here); int8 runs on amx, avx512 with VNNI, and scalar".into(),
        )),
        Err(Some(feature)) => Err(err(format!("the int8 kernels need {feature}, which this CPU lacks"))),
    }
}

#[cfg(test)]
mod tests {
    /// `select` routes every `Op` explicitly: a wildcard arm would let a new op compile with no
    /// lowering (adding an `Op` variant must fail to compile here; checked by hand once, see
    /// docs/architecture.md).
    #[test]
    fn select_has_no_catch_all() {
        let src = include_str!("mod.rs");
        let start = src.find("fn select(").expect("select");
        let body = &src[start..start + src[start..].find("\n}\n").expect("end of select")];
        for line in body.lines().map(str::trim) {
            let pattern = line.split("=>").next().unwrap_or("").trim();
            let catch_all =
                line.contains("=>") && (pattern == "_" || pattern.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(!catch_all, "a catch-all arm in select: {line}");
        }
    }
}
