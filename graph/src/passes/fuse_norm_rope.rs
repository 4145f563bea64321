use gg_ops::Op;

use super::sole_consumer;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

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
        let layer = g.node(r).layer;
        let op = Op::RmsNormRope {
            eps,
            head_dim,
            base,
            cols: None,
        };
        let mut patch = Patch::new("fuse-norm-rope");
        let fused = patch.add(g, op, &[ni[0], ni[1], ins[1]], label, layer, &[norm, r])?;
        patch.reroute(g, r, fused);
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
