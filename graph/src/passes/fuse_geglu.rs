use gg_ops::{MatMulSpec, Op, Rows, Shape};

use super::fuse_qkv::{joined_label, tensor_weight};
use super::sole_consumer;
use crate::ir::{Graph, GraphError, NodeId, WeightDesc, WeightSource};
use crate::patch::Patch;

/// Search pattern: Mul(Gelu(MatMul(x, Wg)), MatMul(x, Wu)) → MatMul{geglu}(x, [Wg; Wu]).
pub fn fuse_geglu(g: &mut Graph) -> Result<bool, GraphError> {
    let muls: Vec<NodeId> = g.node_ids().filter(|&n| g.node(n).op == Op::Mul).collect();
    let mut changed = false;
    for m in muls {
        let ins = g.inputs(m);
        let (gelu, up) = match (&g.node(ins[0]).op, &g.node(ins[1]).op) {
            (Op::Gelu, _) => (ins[0], ins[1]),
            (_, Op::Gelu) => (ins[1], ins[0]),
            _ => continue,
        };
        let gate = g.inputs(gelu)[0];
        if g.node(gate).op != Op::matmul() || g.node(up).op != Op::matmul() || gate == up {
            continue;
        }
        let (gi, ui) = (g.inputs(gate), g.inputs(up));
        let single_use = sole_consumer(g, gelu) == Some(m)
            && sole_consumer(g, gate) == Some(gelu)
            && sole_consumer(g, up) == Some(m);
        if gi[0] != ui[0] || !single_use {
            continue;
        }
        let (Some((gname, gdesc)), Some((uname, udesc))) = (tensor_weight(g, gi[1]), tensor_weight(g, ui[1])) else {
            continue;
        };
        if gdesc.dtype != udesc.dtype || gdesc.shape != udesc.shape {
            continue;
        }
        let Rows::Fixed(f) = gdesc.shape.rows else { continue };
        let layer = g.node(m).layer;
        let w = g.weight(
            WeightDesc {
                source: WeightSource::ConcatRows(vec![gname, uname]),
                dtype: gdesc.dtype,
                shape: Shape::fixed(2 * f, gdesc.shape.cols),
            },
            layer,
        );
        let label = joined_label(&[&g.node(gate).label, &g.node(up).label]);
        let op = Op::MatMul(MatMulSpec {
            geglu: true,
            ..MatMulSpec::PLAIN
        });
        let mut patch = Patch::new("fuse-geglu");
        let fused = patch.add(g, op, &[gi[0], w], label, layer, &[gate, up, gelu, m])?;
        patch.reroute(g, m, fused);
        patch.commit(g)?;
        changed = true;
    }
    Ok(changed)
}
