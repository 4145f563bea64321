use gg_ops::Op;

use super::sole_consumer;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: L2Norm(MatMul(…MatMul(Pool(x), W₁)…, W_n)) → PoolHead(x, W₁…W_n) — the
/// whole pooling head as one region (the dense layers and the L2 norm optional).
pub fn fuse_pool_head(g: &mut Graph) -> Result<bool, GraphError> {
    let pools: Vec<NodeId> = g.node_ids().filter(|&n| matches!(g.node(n).op, Op::Pool(_))).collect();
    let mut changed = false;
    for pool in pools {
        let Op::Pool(kind) = g.node(pool).op else { continue };
        let x = g.inputs(pool)[0];
        let mut chain = vec![pool];
        let mut weights = Vec::new();
        let mut last = pool;
        while let Some(c) = sole_consumer(g, last) {
            let ci = g.inputs(c);
            if g.node(c).op == Op::matmul() && ci[0] == last && matches!(g.node(ci[1]).op, Op::Weight(_)) {
                weights.push(ci[1]);
                chain.push(c);
                last = c;
            } else {
                break;
            }
        }
        let mut normalize = false;
        if let Some(c) = sole_consumer(g, last) {
            if g.node(c).op == Op::L2Norm {
                normalize = true;
                chain.push(c);
                last = c;
            }
        }
        if chain.len() < 2 {
            continue;
        }
        let mut inputs = vec![x];
        inputs.extend(&weights);
        let op = Op::PoolHead {
            kind,
            n_dense: weights.len(),
            normalize,
        };
        let mut patch = Patch::new("fuse-pool-head");
        // `head.pool_mean` → `head.pool_head`: each head's region keeps its head's prefix.
        let label = match g.node(pool).label.rsplit_once('.') {
            Some((prefix, _)) => format!("{prefix}.pool_head"),
            None => "pool_head".to_string(),
        };
        let fused = patch.add(g, op, &inputs, &label, None, &chain)?;
        patch.reroute(g, last, fused);
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
