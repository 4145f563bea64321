use gg_ops::Op;

use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: Scale(x, 1) → x;  SliceCols(x, 0, all columns) → x.
pub fn remove_noops(g: &mut Graph) -> Result<bool, GraphError> {
    let noops: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| {
            let node = g.node(n);
            match node.op {
                Op::Scale(f) => f == 1.0,
                Op::SliceCols { start: 0, len } => g.inputs(n).first().is_some_and(|&i| g.node(i).shape.cols == len),
                _ => false,
            }
        })
        .collect();
    let mut patch = Patch::new("remove-noops");
    for &n in &noops {
        // Read the input now: an earlier no-op in a chain may have been rerouted already.
        let input = g.inputs(n)[0];
        patch.reroute(g, n, input);
        patch.remove(&[n]);
    }
    patch.commit(g)?;
    Ok(!noops.is_empty())
}
