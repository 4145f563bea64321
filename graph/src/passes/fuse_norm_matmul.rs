use gg_ops::Op;

use super::{describe, plain_matmul_of};
use crate::ir::{Graph, GraphError, NodeId};

/// Search pattern: MatMul(RmsNorm(x)·w, W) → FusedMatMul{norm}(x, w, W) — the pre-norm is
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
        for c in consumers {
            let geglu = matches!(g.node(c).op, Op::FusedMatMul { geglu: true, .. });
            let w = g.inputs(c)[1];
            let mut fused_from = vec![describe(g, norm)];
            fused_from.extend(match g.node(c).fused_from.is_empty() {
                true => vec![describe(g, c)],
                false => g.node(c).fused_from.clone(),
            });
            let (label, layer) = (g.node(c).label.clone(), g.node(c).layer);
            let fused = g.add(
                Op::FusedMatMul {
                    norm_eps: Some(eps),
                    geglu,
                    in_cols: None,
                },
                &[ni[0], ni[1], w],
                label,
                layer,
            )?;
            g.node_mut(fused).fused_from = fused_from;
            g.replace_uses(c, fused);
            g.remove(c);
        }
        g.remove(norm);
        changed = true;
    }
    Ok(changed)
}
