use petgraph::visit::{Dfs, Reversed};

use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: any node no graph output depends on → removed; then weight table entries
/// no node reads are dropped.
pub fn eliminate_dead(g: &mut Graph) -> Result<bool, GraphError> {
    let pg = g.petgraph();
    let reversed = Reversed(pg);
    let mut live = std::collections::HashSet::new();
    for &o in g.outputs() {
        let mut dfs = Dfs::new(reversed, o);
        while let Some(n) = dfs.next(reversed) {
            live.insert(n);
        }
    }
    let dead: Vec<NodeId> = g.node_ids().filter(|n| !live.contains(n)).collect();
    // Dead nodes are read only by dead nodes, which the patch checks.
    let mut patch = Patch::new("dce");
    patch.remove(&dead);
    patch.commit(g)?;
    let compacted = g.compact_weights();
    Ok(!dead.is_empty() || compacted)
}
