use gg_ops::{MatMulSpec, Op};

use super::plain_matmul_of;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: RmsNorm(AddRmsNorm(x, a, w₁))·w₂ feeding matmuls → ResidualNorm(x, a, w₁, w₂)
/// = [s | rmsnorm(s)·w₂] — the residual add fused with the norm that follows it; the matmuls
/// read columns C..2C, the next residual columns 0..C.
pub fn fuse_residual_norm(g: &mut Graph) -> Result<bool, GraphError> {
    let sums: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::AddRmsNorm { .. }))
        .collect();
    let mut changed = false;
    for s in sums {
        let Op::AddRmsNorm { eps } = g.node(s).op else { continue };
        let c = g.node(s).shape.cols;
        if g.is_output(s) {
            continue;
        }
        // Exactly one following full-row norm, with the same eps.
        let norms: Vec<NodeId> = g
            .consumers(s)
            .into_iter()
            .filter(|&n| matches!(g.node(n).op, Op::RmsNorm { eps: e, group } if e == eps && group == c))
            .collect();
        let [h] = norms[..] else { continue };
        if g.inputs(h)[0] != s || g.use_count(s) != g.consumers(s).len() {
            continue;
        }
        // The norm feeds only matmuls (as their activations)...
        let matmuls = g.consumers(h);
        if g.is_output(h) || matmuls.is_empty() || !matmuls.iter().all(|&m| plain_matmul_of(g, m, h)) {
            continue;
        }
        // ...and the sum feeds the norm and residual adds that can read the wider row.
        let residual_reader = |n: NodeId| {
            n == h
                || (matches!(g.node(n).op, Op::AddRmsNorm { .. } | Op::ResidualNorm { .. })
                    && g.inputs(n)[0] == s
                    && g.inputs(n)[1..].iter().all(|&i| i != s))
        };
        if !g.consumers(s).into_iter().all(residual_reader) {
            continue;
        }
        let si = g.inputs(s);
        let w2 = g.inputs(h)[1];
        let (label, layer) = (g.node(s).label.clone(), g.node(s).layer);
        let mut patch = Patch::new("fuse-residual-norm");
        let op = Op::ResidualNorm { eps };
        let r = patch.add(
            g,
            op,
            &[si[0], si[1], si[2], w2],
            format!("{label}+norm"),
            layer,
            &[s, h],
        )?;
        for m in matmuls {
            let Op::MatMul(spec) = g.node(m).op else { continue };
            let op = Op::MatMul(MatMulSpec {
                in_cols: Some((c, c)),
                ..spec
            });
            let (ml, mlayer) = (g.node(m).label.clone(), g.node(m).layer);
            let fused = patch.add(g, op, &[r, g.inputs(m)[1]], ml, mlayer, &[m])?;
            patch.reroute(g, m, fused);
        }
        patch.reroute(g, s, r);
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
