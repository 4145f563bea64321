use std::collections::BTreeMap;

use gg_ops::{Op, Rows, Shape};

use crate::ir::{Graph, GraphError, NodeId, WeightDesc, WeightSource};
use crate::patch::Patch;

/// A matmul reading the shared input: (node, weight tensor name, weight desc).
type Sibling = (NodeId, String, WeightDesc);

/// The weight read by `n`'s input 1 if it is a file tensor: (name, desc).
pub(crate) fn tensor_weight(g: &Graph, w: NodeId) -> Option<(String, WeightDesc)> {
    let desc = g.weight_of(w)?;
    match &desc.source {
        WeightSource::Tensor(name) => Some((name.clone(), desc.clone())),
        WeightSource::ConcatRows(_) | WeightSource::User { .. } => None,
    }
}

/// A label for a fused node: the shared prefix of the labels, then the differing suffixes
/// joined by `+` (`blk.0.attn_q`, `blk.0.attn_k` → `blk.0.attn_q+k`).
pub(crate) fn joined_label(labels: &[&str]) -> String {
    let first = labels[0];
    let common = labels.iter().fold(first.len(), |n, l| {
        first.bytes().zip(l.bytes()).take(n).take_while(|(a, b)| a == b).count()
    });
    let rest: Vec<&str> = labels.iter().map(|l| &l[common..]).collect();
    format!("{}{}", &first[..common], rest.join("+"))
}

/// Search pattern: MatMul(x, W₁), …, MatMul(x, W_n) sharing x (Q, K, V) →
/// SliceCols(MatMul(x, [W₁; …; W_n])) — the rows concatenated once, at compile time.
pub fn fuse_qkv(g: &mut Graph) -> Result<bool, GraphError> {
    let mut changed = false;
    let sources: Vec<NodeId> = g.node_ids().collect();
    for x in sources {
        if !g.contains(x) {
            continue;
        }
        // Sibling matmuls reading x, grouped by weight type and inner size.
        let mut groups: BTreeMap<(String, usize), Vec<Sibling>> = BTreeMap::new();
        for c in g.consumers(x) {
            if g.node(c).op != Op::matmul() {
                continue;
            }
            let ins = g.inputs(c);
            if ins[0] != x {
                continue;
            }
            if let Some((name, desc)) = tensor_weight(g, ins[1]) {
                groups
                    .entry((desc.dtype.name().to_string(), desc.shape.cols))
                    .or_default()
                    .push((c, name, desc));
            }
        }
        for ((_, k), mut mms) in groups {
            if mms.len() < 2 {
                continue;
            }
            mms.sort_by_key(|m| m.0);
            let rows: Vec<usize> = mms
                .iter()
                .map(|m| match m.2.shape.rows {
                    Rows::Fixed(n) => n,
                    _ => 0,
                })
                .collect();
            let desc = WeightDesc {
                source: WeightSource::ConcatRows(mms.iter().map(|m| m.1.clone()).collect()),
                dtype: mms[0].2.dtype,
                shape: Shape::fixed(rows.iter().sum(), k),
            };
            let layer = g.node(mms[0].0).layer;
            let w = g.weight(desc, layer);
            let labels: Vec<String> = mms.iter().map(|m| g.node(m.0).label.clone()).collect();
            let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let siblings: Vec<NodeId> = mms.iter().map(|m| m.0).collect();
            let mut patch = Patch::new("fuse-qkv");
            let fused = patch.add(g, Op::matmul(), &[x, w], joined_label(&label_refs), layer, &siblings)?;
            let mut start = 0;
            for (&c, n) in siblings.iter().zip(&rows) {
                let label = g.node(c).label.clone();
                let slice = patch.add(g, Op::SliceCols { start, len: *n }, &[fused], label, layer, &[])?;
                patch.reroute(g, c, slice);
                start += n;
            }
            patch.commit(g)?;
            changed = true;
        }
    }
    Ok(changed)
}
