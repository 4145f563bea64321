use gg_ops::Op;

use super::{describe, sole_consumer};
use crate::ir::{Graph, GraphError, NodeId};

/// Search pattern: Rope(RmsNorm_per_head(x)·w, pos) → RmsNormRope(x, w, pos).
pub fn fuse_norm_rope(g: &mut Graph) -> Result<bool, GraphError> {
    let ropes: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::Rope { .. }))
        .collect();
    let mut changed = false;
    for r in ropes {
        let Op::Rope { base, head_dim } = g.node(r).op else {
            continue;
        };
        let ins = g.inputs(r);
        let norm = ins[0];
        let Op::RmsNorm { eps, group } = g.node(norm).op else {
            continue;
        };
        if group != head_dim || sole_consumer(g, norm) != Some(r) {
            continue;
        }
        let ni = g.inputs(norm);
        let label = format!("{}+rope", g.node(norm).label);
        let fused_from = vec![describe(g, norm), describe(g, r)];
        let layer = g.node(r).layer;
        let fused = g.add(
            Op::RmsNormRope {
                eps,
                head_dim,
                base,
                cols: None,
            },
            &[ni[0], ni[1], ins[1]],
            label,
            layer,
        )?;
        g.node_mut(fused).fused_from = fused_from;
        g.replace_uses(r, fused);
        g.remove(r);
        g.remove(norm);
        changed = true;
    }
    Ok(changed)
}
