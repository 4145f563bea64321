//! The one way passes rewrite the graph (tract's `ModelPatch`, cut down): add the new nodes
//! through a [`Patch`] naming the nodes they replace, route the old nodes' readers to the new
//! ones, then commit, which removes the replaced nodes — and refuses if any of them still has
//! a reader outside the rewrite, so a pass cannot leave a dangling edge behind.

use std::collections::HashSet;

use gg_ops::Op;

use crate::ir::{Graph, GraphError, NodeId};

/// One rewrite in progress.
#[derive(Debug, Default)]
pub struct Patch {
    replaced: Vec<NodeId>,
    /// The pass's name, for errors.
    pass: &'static str,
}

impl Patch {
    pub fn new(pass: &'static str) -> Patch {
        Patch {
            replaced: Vec::new(),
            pass,
        }
    }

    /// Add a node that replaces `from` (recorded as its provenance, removed at commit).
    pub fn add(
        &mut self,
        g: &mut Graph,
        op: Op,
        inputs: &[NodeId],
        label: impl Into<String>,
        layer: Option<usize>,
        from: &[NodeId],
    ) -> Result<NodeId, GraphError> {
        let fused_from: Vec<String> = from.iter().flat_map(|&n| provenance(g, n)).collect();
        let id = g.add(op, inputs, label, layer)?;
        g.node_mut(id).fused_from = fused_from;
        self.remove(from);
        Ok(id)
    }

    /// Nodes to remove at commit without recording them anywhere (a no-op being dropped).
    pub fn remove(&mut self, nodes: &[NodeId]) {
        for &n in nodes {
            if !self.replaced.contains(&n) {
                self.replaced.push(n);
            }
        }
    }

    /// Every reader of `old` (and the output list) reads `new` instead.
    pub fn reroute(&mut self, g: &mut Graph, old: NodeId, new: NodeId) {
        g.replace_uses(old, new);
    }

    /// Remove the replaced nodes. Each must have no reader left but other replaced nodes.
    pub fn commit(self, g: &mut Graph) -> Result<(), GraphError> {
        let gone: HashSet<NodeId> = self.replaced.iter().copied().collect();
        for &n in &self.replaced {
            if let Some(reader) = g.consumers(n).into_iter().find(|c| !gone.contains(c)) {
                return Err(GraphError::Invalid {
                    label: g.node(n).label.clone(),
                    what: format!(
                        "pass {}: replaced but still read by {:?}",
                        self.pass,
                        g.node(reader).label
                    ),
                });
            }
            if g.is_output(n) {
                return Err(GraphError::Invalid {
                    label: g.node(n).label.clone(),
                    what: format!("pass {}: replaced a graph output without rerouting it", self.pass),
                });
            }
        }
        for n in self.replaced {
            g.remove(n);
        }
        Ok(())
    }
}

/// What a node stands for in a fused node's provenance: the ops it was fused from, or itself
/// as `op label`.
pub fn provenance(g: &Graph, n: NodeId) -> Vec<String> {
    let node = g.node(n);
    if node.fused_from.is_empty() {
        vec![format!("{} {}", node.op.name(), node.label)]
    } else {
        node.fused_from.clone()
    }
}

#[cfg(test)]
mod tests {
    use gg_ops::{DType, InputKind, Shape};

    use super::*;
    use crate::ir::{WeightDesc, WeightSource};

    fn small() -> (Graph, NodeId, NodeId) {
        let mut g = Graph::new();
        let ids = g.input(InputKind::TokenIds);
        let w = g.weight(
            WeightDesc {
                source: WeightSource::Tensor("t".into()),
                dtype: DType::F32,
                shape: Shape::fixed(10, 4),
            },
            None,
        );
        let e = g.add(Op::Embed { scale: 1.0 }, &[ids, w], "embed", None).unwrap();
        let s = g.add(Op::Scale(2.0), &[e], "scale", None).unwrap();
        g.set_outputs(vec![s]);
        (g, e, s)
    }

    #[test]
    fn commit_refuses_a_replaced_node_that_is_still_read() {
        let (mut g, e, _) = small();
        let mut p = Patch::new("test");
        p.remove(&[e]);
        let err = p.commit(&mut g).unwrap_err().to_string();
        assert!(err.contains("still read by \"scale\""), "{err}");
        assert!(g.contains(e), "nothing removed on error");
    }

    #[test]
    fn add_reroute_commit_records_provenance() {
        let (mut g, e, s) = small();
        let mut p = Patch::new("test");
        let n = p.add(&mut g, Op::Scale(3.0), &[e], "scale3", None, &[s]).unwrap();
        p.reroute(&mut g, s, n);
        p.commit(&mut g).unwrap();
        assert!(!g.contains(s));
        assert_eq!(g.outputs(), &[n]);
        assert_eq!(g.node(n).fused_from, vec!["scale scale".to_string()]);
        g.validate().unwrap();
    }
}
