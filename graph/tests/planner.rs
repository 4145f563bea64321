//! The planner on random graphs: live values never overlap, the arena never exceeds the sum
//! of all values, in-place reuse happens, and plans are deterministic.

use gg_graph::{check_plan, plan, Graph, NodeId, WeightDesc, WeightSource};
use gg_ops::{DType, InputKind, Op, PoolKind, Shape};

use gg_ops::testing::XorShift as Rng;

/// A random DAG of f32 activations `[T, d]` with d ∈ {32, 64, 96}.
fn random_graph(rng: &mut Rng, n_ops: usize) -> Graph {
    let mut g = Graph::new();
    let ids = g.input(InputKind::TokenIds);
    let dims = [32usize, 64, 96];
    let table = g.weight(
        WeightDesc {
            source: WeightSource::Tensor("emb".into()),
            dtype: DType::F32,
            shape: Shape::fixed(100, 32),
        },
        None,
    );
    let mut acts: Vec<NodeId> = vec![g.add(Op::Embed { scale: 1.0 }, &[ids, table], "embed", None).unwrap()];
    for i in 0..n_ops {
        let x = acts[rng.below(acts.len())];
        let d = g.node(x).shape.cols;
        let same: Vec<NodeId> = acts.iter().copied().filter(|&a| g.node(a).shape.cols == d).collect();
        let y = same[rng.below(same.len())];
        let node = match rng.below(6) {
            0 => g.add(Op::Add, &[x, y], format!("add{i}"), None),
            1 => g.add(Op::Mul, &[x, y], format!("mul{i}"), None),
            2 => g.add(Op::Gelu, &[x], format!("gelu{i}"), None),
            3 => {
                let w = g.weight(
                    WeightDesc {
                        source: WeightSource::Tensor(format!("n{i}")),
                        dtype: DType::F32,
                        shape: Shape::fixed(1, d),
                    },
                    None,
                );
                g.add(Op::RmsNorm { eps: 1e-6, group: d }, &[x, w], format!("norm{i}"), None)
            }
            _ => {
                let n = dims[rng.below(dims.len())];
                let w = g.weight(
                    WeightDesc {
                        source: WeightSource::Tensor(format!("w{i}")),
                        dtype: DType::Q8_0,
                        shape: Shape::fixed(n, d),
                    },
                    None,
                );
                g.add(Op::matmul(), &[x, w], format!("mm{i}"), None)
            }
        };
        acts.push(node.unwrap());
    }
    let last = *acts.last().unwrap();
    let pooled = g.add(Op::Pool(PoolKind::Mean), &[last], "pool", None).unwrap();
    let mut outputs = vec![pooled];
    for _ in 0..rng.below(3) {
        outputs.push(acts[rng.below(acts.len())]);
    }
    outputs.dedup();
    g.set_outputs(outputs);
    g
}

#[test]
fn random_graphs_plan_without_overlap() {
    let mut rng = Rng(0xdead_beef_1234_5678);
    let mut in_place = 0;
    for case in 0..300 {
        let n_ops = 5 + rng.below(60);
        let g = random_graph(&mut rng, n_ops);
        g.validate().unwrap();
        let max_tokens = 1 + rng.below(300);
        let p = plan(&g, max_tokens, 1 + rng.below(max_tokens)).unwrap();
        if let Err(e) = check_plan(&p) {
            panic!("case {case}: {e}");
        }
        assert!(
            p.arena_bytes <= p.total_value_bytes,
            "case {case}: arena {} > sum {}",
            p.arena_bytes,
            p.total_value_bytes
        );
        assert!(p.peak_live_bytes <= p.arena_bytes);
        in_place += p.values.iter().filter(|v| v.in_place).count();
        let again = plan(&g, max_tokens, p.max_seqs).unwrap();
        assert_eq!(again.values, p.values, "plans must be deterministic");
    }
    assert!(in_place > 100, "in-place reuse almost never happened ({in_place})");
}

/// A graph that gathers `[T, cols]` embedding rows; returns it and the gathered value.
fn embedded(cols: usize) -> (Graph, NodeId) {
    let mut g = Graph::new();
    let ids = g.input(InputKind::TokenIds);
    let table = g.weight(
        WeightDesc {
            source: WeightSource::Tensor("emb".into()),
            dtype: DType::F32,
            shape: Shape::fixed(10, cols),
        },
        None,
    );
    let x = g.add(Op::Embed { scale: 1.0 }, &[ids, table], "embed", None).unwrap();
    (g, x)
}

#[test]
fn a_chain_runs_in_two_buffers() {
    // x -> gelu -> gelu -> ... : every step can reuse its input's buffer.
    let (mut g, mut x) = embedded(64);
    for i in 0..10 {
        x = g.add(Op::Gelu, &[x], format!("g{i}"), None).unwrap();
    }
    g.set_outputs(vec![x]);
    let p = plan(&g, 16, 1).unwrap();
    check_plan(&p).unwrap();
    // ids (64-byte aligned) + one activation buffer.
    assert_eq!(p.arena_bytes, 64 + 16 * 64 * 4);
    assert_eq!(p.values.iter().filter(|v| v.in_place).count(), 10);
}

#[test]
fn scratch_is_planned_in_bytes_of_its_element_type() {
    // A kernel's scratch of i8 (quantized activations) takes a quarter of the f32 bytes, and
    // lives only while its node runs.
    use std::collections::HashMap;

    use gg_graph::{plan_with_scratch, ScratchNeed};
    let (mut g, x) = embedded(256);
    let y = g.add(Op::Gelu, &[x], "gelu", None).unwrap();
    g.set_outputs(vec![y]);
    let need = |dtype| {
        HashMap::from([(
            y,
            ScratchNeed {
                dtype,
                shape: Shape::tokens(256),
            },
        )])
    };
    let f32_plan = plan_with_scratch(&g, 16, 1, &need(DType::F32)).unwrap();
    let i8_plan = plan_with_scratch(&g, 16, 1, &need(DType::I8)).unwrap();
    check_plan(&f32_plan).unwrap();
    check_plan(&i8_plan).unwrap();
    let scratch = |p: &gg_graph::Plan| p.values.iter().find(|v| v.scratch).map(|v| (v.dtype, v.slot.bytes));
    assert_eq!(scratch(&f32_plan), Some((DType::F32, 16 * 256 * 4)));
    assert_eq!(scratch(&i8_plan), Some((DType::I8, 16 * 256)));
    assert_eq!(f32_plan.arena_bytes - i8_plan.arena_bytes, 16 * 256 * 3);
    // A size that cannot be represented is an error naming the node, not a wrapped number.
    let err = plan(&g, usize::MAX / 2, 1).unwrap_err().to_string();
    assert!(err.contains("does not fit in memory"), "{err}");
}
