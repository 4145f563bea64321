use gg_ops::Op;

use super::sole_consumer;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: Add(x, RmsNorm(a)·w) → AddRmsNorm(x, a, w) — Gemma's post-norm and the
/// residual add in one pass over the hidden state (in place on x).
pub fn fuse_post_norm_residual(g: &mut Graph) -> Result<bool, GraphError> {
    let adds: Vec<NodeId> = g.node_ids().filter(|&n| g.node(n).op == Op::Add).collect();
    let mut changed = false;
    for add in adds {
        let ins = g.inputs(add);
        let is_full_norm = |n: NodeId| {
            matches!(g.node(n).op, Op::RmsNorm { group, .. } if group == g.node(n).shape.cols)
                && sole_consumer(g, n) == Some(add)
        };
        let (x, norm) = if is_full_norm(ins[1]) {
            (ins[0], ins[1])
        } else if is_full_norm(ins[0]) {
            (ins[1], ins[0])
        } else {
            continue;
        };
        let Op::RmsNorm { eps, .. } = g.node(norm).op else {
            continue;
        };
        let ni = g.inputs(norm);
        let label = g.node(add).label.clone();
        let layer = g.node(add).layer;
        let mut patch = Patch::new("fuse-post-norm-residual");
        let fused = patch.add(
            g,
            Op::AddRmsNorm { eps },
            &[x, ni[0], ni[1]],
            label,
            layer,
            &[norm, add],
        )?;
        patch.reroute(g, add, fused);
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
