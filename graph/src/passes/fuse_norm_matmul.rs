use gg_ops::{MatMulSpec, Op};

use super::plain_matmul_of;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: MatMul(RmsNorm(x)·w, W) → MatMul{norm}(x, w, W) — the pre-norm is
/// applied as the matmul loads its activations (also for GeGLU matmuls).
pub fn fold_norm_into_matmul(g: &mut Graph) -> Result<bool, GraphError> {
    let norms: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::RmsNorm { .. }))
        .collect();
    let mut changed = false;
    for norm in norms {
        let Op::RmsNorm { eps, group } = g.node(norm).op else {
            continue;
        };
        if group != g.node(norm).shape.cols || g.is_output(norm) {
            continue;
        }
        let consumers = g.consumers(norm);
        if consumers.is_empty() || !consumers.iter().all(|&c| plain_matmul_of(g, c, norm)) {
            continue;
        }
        let ni = g.inputs(norm);
        let mut patch = Patch::new("fold-norm-into-matmul");
        for c in consumers {
            let Op::MatMul(spec) = g.node(c).op else { continue };
            let w = g.inputs(c)[1];
            let (label, layer) = (g.node(c).label.clone(), g.node(c).layer);
            let op = Op::MatMul(MatMulSpec {
                norm_eps: Some(eps),
                ..spec
            });
            let fused = patch.add(g, op, &[ni[0], ni[1], w], label, layer, &[norm, c])?;
            patch.reroute(g, c, fused);
        }
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
