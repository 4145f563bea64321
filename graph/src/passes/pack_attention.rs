use gg_ops::{MatMulSpec, Op};

use super::sole_consumer;
use crate::ir::{Graph, GraphError, NodeId};
use crate::patch::Patch;

/// Search pattern: Attention(RmsNormRope(SliceCols(M)), RmsNormRope(SliceCols(M)), SliceCols(M))
/// → Attention{packed}(RmsNormRope{k cols}(RmsNormRope{q cols}(M))) — q, k, v stay in the
/// fused QKV matmul's rows: no slice copies, the norms and RoPE work in place.
pub fn pack_attention(g: &mut Graph) -> Result<bool, GraphError> {
    let attns: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| matches!(g.node(n).op, Op::Attention { packed: false, .. }))
        .collect();
    let mut changed = false;
    for a in attns {
        let Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            scale,
            window,
            ..
        } = g.node(a).op
        else {
            continue;
        };
        let ins = g.inputs(a);
        let (hq, hkv) = (n_heads * head_dim, n_kv_heads * head_dim);
        // (norm-rope node, its slice) for q and k; the slice for v.
        let slice_of = |n: NodeId| match g.node(n).op {
            Op::SliceCols { start, len } if sole_consumer(g, n).is_some() => Some((g.inputs(n)[0], start, len)),
            _ => None,
        };
        let norm_rope = |n: NodeId| match g.node(n).op {
            Op::RmsNormRope { cols: None, .. } if sole_consumer(g, n) == Some(a) => {
                let ni = g.inputs(n);
                slice_of(ni[0]).map(|s| (n, ni[0], s))
            }
            _ => None,
        };
        let (Some((nq, sq, (mq, q0, ql))), Some((nk, sk, (mk, k0, kl)))) = (norm_rope(ins[0]), norm_rope(ins[1]))
        else {
            continue;
        };
        let Some((mv, v0, vl)) = (sole_consumer(g, ins[2]) == Some(a))
            .then(|| slice_of(ins[2]))
            .flatten()
        else {
            continue;
        };
        let m = mq;
        let layout_ok = mk == m && mv == m && (q0, ql, k0, kl, v0, vl) == (0, hq, hq, hkv, hq + hkv, hkv);
        if !layout_ok || g.node(m).shape.cols != hq + 2 * hkv || g.consumers(m).len() != 3 || g.is_output(m) {
            continue;
        }
        // The output's readers must be matmuls (they will read its first H·hd columns).
        let readers_ok = !g.is_output(a)
            && g.consumers(a)
                .iter()
                .all(|&c| g.node(c).op == Op::matmul() && g.inputs(c)[0] == a && g.inputs(c)[1] != a);
        if !readers_ok {
            continue;
        }
        let with_cols = |g: &Graph, n: NodeId, cols: (usize, usize)| match g.node(n).op {
            Op::RmsNormRope {
                eps, head_dim, base, ..
            } => Op::RmsNormRope {
                eps,
                head_dim,
                base,
                cols: Some(cols),
            },
            _ => unreachable!("matched above"),
        };
        let layer = g.node(a).layer;
        let (qi, ki) = (g.inputs(nq), g.inputs(nk));
        let op_q = with_cols(g, nq, (0, hq));
        let op_k = with_cols(g, nk, (hq, hkv));
        let mut patch = Patch::new("pack-attention");
        let label_q = g.node(nq).label.clone();
        let n1 = patch.add(g, op_q, &[m, qi[1], qi[2]], label_q, layer, &[sq, nq])?;
        let label_k = g.node(nk).label.clone();
        let n2 = patch.add(g, op_k, &[n1, ki[1], ki[2]], label_k, layer, &[sk, nk])?;
        let op = Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            scale,
            window,
            packed: true,
        };
        let label_a = g.node(a).label.clone();
        let packed = patch.add(g, op, &[n2], label_a, layer, &[ins[2], a])?;
        // Readers of the attention output (the o-projection) now read the first H·hd columns.
        for c in g.consumers(a) {
            let ci = g.inputs(c);
            let op = Op::MatMul(MatMulSpec {
                in_cols: Some((0, hq)),
                ..MatMulSpec::PLAIN
            });
            let (label, clayer) = (g.node(c).label.clone(), g.node(c).layer);
            let m2 = patch.add(g, op, &[packed, ci[1]], label, clayer, &[c])?;
            patch.reroute(g, c, m2);
        }
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
