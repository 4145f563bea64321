//! The executor: a graph and its plan compiled into a flat list of steps with fixed arena
//! offsets, run by a kernel table. Running allocates nothing: the arena is made once
//! (`Program::new_arena`), inputs are copied into it, and every kernel works on slices of it.

use gg_graph::{Graph, NodeId, Plan};
use gg_ops::{InputKind, Op, Shape, WeightId};

use crate::kernels::{Activations, AttentionArgs, AttentionIo, KernelTable, Par, SeqSpan};
use crate::weights::WeightTable;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecError {
    #[error("batch of {tokens} tokens exceeds the plan's {max} tokens")]
    TooManyTokens { tokens: usize, max: usize },
    #[error("batch of {seqs} sequences exceeds the plan's {max} sequences")]
    TooManySeqs { seqs: usize, max: usize },
    #[error("malformed batch: {0}")]
    BadBatch(String),
    #[error("token id {id} at batch row {row} is outside the {vocab}-row embedding table")]
    TokenOutOfRange { row: usize, id: i32, vocab: usize },
    #[error("node {label:?}: {what}")]
    Unsupported { label: String, what: String },
    #[error("plan has no slot for node {0:?}")]
    Unplanned(String),
}

/// One batch: token ids and positions per row, and where each sequence is.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub ids: &'a [i32],
    pub positions: &'a [i32],
    pub seqs: &'a [SeqSpan],
    /// For every row, the index of its sequence.
    pub row_seq: &'a [u32],
}

impl Batch<'_> {
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// Check the batch is self-consistent (spans tile the rows in order, positions count
    /// from 0 inside each span) without allocating.
    fn validate(&self) -> Result<(), ExecError> {
        let t = self.ids.len();
        if self.positions.len() != t || self.row_seq.len() != t {
            return Err(ExecError::BadBatch(format!(
                "{t} ids, {} positions, {} row→sequence entries",
                self.positions.len(),
                self.row_seq.len()
            )));
        }
        let mut next = 0;
        for (s, span) in self.seqs.iter().enumerate() {
            if span.start != next || span.len == 0 {
                return Err(ExecError::BadBatch(format!(
                    "sequence {s} spans rows {}..+{}",
                    span.start, span.len
                )));
            }
            for r in span.start..span.start + span.len {
                if r >= t || self.row_seq[r] as usize != s || self.positions[r] as usize != r - span.start {
                    return Err(ExecError::BadBatch(format!(
                        "row {r} does not belong to sequence {s} as laid out"
                    )));
                }
            }
            next += span.len;
        }
        if next != t {
            return Err(ExecError::BadBatch(format!("sequences cover {next} of {t} rows")));
        }
        Ok(())
    }
}

/// Scratch memory for one running batch: the planned arena.
pub struct Arena {
    data: Vec<f32>,
}

impl Arena {
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

#[derive(Clone, Copy, Debug)]
enum Arg {
    /// An arena value: offset in f32 elements and shape.
    Value {
        offset: usize,
        shape: Shape,
    },
    Weight(WeightId),
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    out: usize,
    shape: Shape,
    args: Vec<Arg>,
    in_place: bool,
    /// Index into `Program::rope` for rope steps.
    rope: usize,
    /// Offset (f32 elements) and shape of the op's scratch buffer.
    scratch: Option<(usize, Shape)>,
}

/// cos/sin of `pos · base^(−2i/hd)` for every position the plan allows.
struct RopeTable {
    base: f32,
    head_dim: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    fn new(base: f32, head_dim: usize, positions: usize) -> RopeTable {
        let half = head_dim / 2;
        // As the reference computes it, in f32: inv_freq = 1 / base^(2i/hd), angle = pos · inv_freq.
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        RopeTable {
            base,
            head_dim,
            cos,
            sin,
        }
    }
}

/// Where an output of the graph is.
#[derive(Clone, Copy, Debug)]
pub struct OutputSlot {
    pub node: NodeId,
    pub offset: usize,
    pub shape: Shape,
}

/// A compiled graph.
pub struct Program {
    steps: Vec<Step>,
    inputs: Vec<(InputKind, usize)>,
    outputs: Vec<OutputSlot>,
    arena_floats: usize,
    max_tokens: usize,
    max_seqs: usize,
    rope: Vec<RopeTable>,
}

impl Program {
    pub fn compile(graph: &Graph, plan: &Plan) -> Result<Program, ExecError> {
        let offset = |n: NodeId| -> Result<usize, ExecError> {
            plan.slot(n)
                .map(|s| s.offset / 4)
                .ok_or_else(|| ExecError::Unplanned(graph.node(n).label.clone()))
        };
        let mut steps = Vec::new();
        let mut inputs = Vec::new();
        let mut rope: Vec<RopeTable> = Vec::new();
        for &n in &plan.order {
            let node = graph.node(n);
            let out = offset(n)?;
            let args = graph
                .inputs(n)
                .into_iter()
                .map(|i| match graph.node(i).op {
                    Op::Weight(w) => Ok(Arg::Weight(w)),
                    _ => Ok(Arg::Value {
                        offset: offset(i)?,
                        shape: graph.node(i).shape,
                    }),
                })
                .collect::<Result<Vec<_>, ExecError>>()?;
            let unsupported = |what: &str| ExecError::Unsupported {
                label: node.label.clone(),
                what: what.into(),
            };
            let mut rope_index = 0;
            match &node.op {
                Op::Input(kind) => {
                    inputs.push((*kind, out));
                    continue;
                }
                Op::Weight(_) => continue,
                Op::MatMul | Op::Embed { .. } | Op::FusedMatMul { .. } | Op::PoolHead { .. }
                    if !args[1..].iter().all(|a| matches!(a, Arg::Weight(_))) =>
                {
                    return Err(unsupported("the weight operands must be weights"))
                }
                Op::Rope { base, head_dim } | Op::RmsNormRope { base, head_dim, .. } => {
                    rope_index = match rope.iter().position(|r| r.base == *base && r.head_dim == *head_dim) {
                        Some(i) => i,
                        None => {
                            rope.push(RopeTable::new(*base, *head_dim, plan.max_tokens));
                            rope.len() - 1
                        }
                    };
                }
                _ => {}
            }
            if node.op.arity() > 0 && matches!(args[0], Arg::Weight(_)) && node.op.in_place_input().is_some() {
                return Err(unsupported("an in-place op cannot take a weight as its first input"));
            }
            steps.push(Step {
                op: node.op.clone(),
                out,
                shape: node.shape,
                args,
                in_place: plan.value(n).is_some_and(|v| v.in_place),
                rope: rope_index,
                scratch: plan.scratch(n).map(|slot| {
                    let typed: Vec<_> = graph
                        .inputs(n)
                        .iter()
                        .map(|&i| (graph.node(i).dtype, graph.node(i).shape))
                        .collect();
                    (slot.offset / 4, node.op.scratch(&typed).expect("planned scratch"))
                }),
            });
        }
        let outputs = graph
            .outputs()
            .iter()
            .map(|&o| {
                Ok(OutputSlot {
                    node: o,
                    offset: offset(o)?,
                    shape: graph.node(o).shape,
                })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        Ok(Program {
            steps,
            inputs,
            outputs,
            arena_floats: plan.arena_bytes / 4,
            max_tokens: plan.max_tokens,
            max_seqs: plan.max_seqs,
            rope,
        })
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn max_seqs(&self) -> usize {
        self.max_seqs
    }

    pub fn arena_bytes(&self) -> usize {
        self.arena_floats * 4
    }

    pub fn outputs(&self) -> &[OutputSlot] {
        &self.outputs
    }

    pub fn n_steps(&self) -> usize {
        self.steps.len()
    }

    /// A zeroed arena for this program (the one allocation of a run).
    pub fn new_arena(&self) -> Arena {
        Arena {
            data: vec![0.0; self.arena_floats],
        }
    }

    /// Output `i` of the last batch run in `arena`: `rows × cols` values.
    pub fn output<'a>(&self, arena: &'a Arena, i: usize, tokens: usize, seqs: usize) -> &'a [f32] {
        let o = &self.outputs[i];
        &arena.data[o.offset..o.offset + o.shape.elements_for(tokens, seqs)]
    }

    /// Run one batch. Allocates nothing.
    pub fn run(
        &self,
        kernels: &KernelTable,
        weights: &WeightTable,
        batch: &Batch<'_>,
        arena: &mut Arena,
        par: Par,
    ) -> Result<(), ExecError> {
        let (t, s) = (batch.tokens(), batch.seqs.len());
        if t > self.max_tokens {
            return Err(ExecError::TooManyTokens {
                tokens: t,
                max: self.max_tokens,
            });
        }
        if s > self.max_seqs {
            return Err(ExecError::TooManySeqs {
                seqs: s,
                max: self.max_seqs,
            });
        }
        batch.validate()?;
        assert_eq!(arena.data.len(), self.arena_floats, "arena made for another program");
        let base = arena.data.as_mut_ptr();
        // SAFETY (for every `view`/`view_mut` below): offsets and lengths come from the plan,
        // which fits every value inside the arena (length checked above) and never lets two
        // values that are live at the same step overlap; the only shared buffer is an in-place
        // output, whose input is then never borrowed separately.
        let view =
            |offset: usize, len: usize| -> &[f32] { unsafe { std::slice::from_raw_parts(base.add(offset), len) } };
        let view_mut = |offset: usize, len: usize| -> &mut [f32] {
            unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) }
        };
        let len_of = |shape: &Shape| shape.elements_for(t, s);

        for &(kind, offset) in &self.inputs {
            let dst: &mut [i32] = bytemuck::cast_slice_mut(view_mut(offset, t));
            dst.copy_from_slice(match kind {
                InputKind::TokenIds => batch.ids,
                InputKind::Positions => batch.positions,
            });
        }

        for step in &self.steps {
            let out = view_mut(step.out, len_of(&step.shape));
            let value = |i: usize| match step.args[i] {
                Arg::Value { offset, shape } => view(offset, len_of(&shape)),
                Arg::Weight(w) => weights.f32(w),
            };
            let weight = |i: usize| match step.args[i] {
                Arg::Weight(w) => weights.view(w),
                Arg::Value { .. } => unreachable!("checked at compile time"),
            };
            let ints = |i: usize| -> &[i32] { bytemuck::cast_slice(value(i)) };
            // In-place kernels work on `out`; when the plan gave `out` its own buffer, start
            // from a copy of input 0.
            // Input 0 may be wider or narrower than `out` (residual rows [s | h] of 2C): then
            // the first columns of each row are copied.
            let prime = |out: &mut [f32]| {
                if step.in_place {
                    return;
                }
                let Arg::Value { shape, .. } = step.args[0] else {
                    unreachable!("checked at compile time")
                };
                if shape.cols == step.shape.cols {
                    out.copy_from_slice(value(0));
                } else {
                    let c = shape.cols.min(step.shape.cols);
                    for (o, x) in out
                        .chunks_exact_mut(step.shape.cols)
                        .zip(value(0).chunks_exact(shape.cols))
                    {
                        o[..c].copy_from_slice(&x[..c]);
                    }
                }
            };
            let rows = step.shape.rows_for(t, s);
            let cols = step.shape.cols;
            match &step.op {
                Op::Input(_) | Op::Weight(_) => {}
                Op::Embed { scale } => {
                    let table = weight(1);
                    let vocab = match step.args[1] {
                        Arg::Weight(w) => weights.get(w).shape.rows_for(0, 0),
                        Arg::Value { .. } => unreachable!("checked at compile time"),
                    };
                    let ids = ints(0);
                    if let Some((row, &id)) = ids.iter().enumerate().find(|(_, &id)| id < 0 || id as usize >= vocab) {
                        return Err(ExecError::TokenOutOfRange { row, id, vocab });
                    }
                    (kernels.embed)(ids, table, cols, *scale, out);
                }
                Op::RmsNorm { eps, group } => {
                    prime(out);
                    (kernels.rms_norm)(out, value(1), *group, *eps, par);
                }
                Op::MatMul => {
                    let k = match step.args[0] {
                        Arg::Value { shape, .. } => shape.cols,
                        Arg::Weight(_) => unreachable!(),
                    };
                    (kernels.matmul)(Activations::dense(value(0), rows, k), weight(1), out, cols, par);
                }
                Op::Rope { head_dim, .. } => {
                    prime(out);
                    let table = &self.rope[step.rope];
                    debug_assert_eq!(table.head_dim, *head_dim);
                    (kernels.rope)(out, cols, ints(1), *head_dim, &table.cos, &table.sin);
                }
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    scale,
                    window,
                    packed,
                } => {
                    let io = if *packed {
                        // In place: the output replaces each row's q columns.
                        prime(out);
                        AttentionIo::Packed { qkv: out }
                    } else {
                        AttentionIo::Separate {
                            q: value(0),
                            k: value(1),
                            v: value(2),
                            out,
                        }
                    };
                    let args = AttentionArgs {
                        io,
                        seqs: batch.seqs,
                        row_seq: batch.row_seq,
                        n_heads: *n_heads,
                        n_kv_heads: *n_kv_heads,
                        head_dim: *head_dim,
                        scale: *scale,
                        window: *window,
                    };
                    (kernels.attention)(args, par);
                }
                Op::Gelu => {
                    prime(out);
                    (kernels.gelu)(out);
                }
                Op::Add => {
                    prime(out);
                    (kernels.add)(out, value(1));
                }
                Op::Mul => {
                    prime(out);
                    (kernels.mul)(out, value(1));
                }
                Op::Scale(f) => {
                    prime(out);
                    (kernels.scale)(out, *f);
                }
                Op::L2Norm => {
                    prime(out);
                    (kernels.l2_norm)(out, cols);
                }
                Op::Pool(kind) => (kernels.pool)(value(0), cols, batch.seqs, *kind, out),
                Op::SliceCols { start, len } => {
                    let Arg::Value { shape, .. } = step.args[0] else {
                        unreachable!("checked at compile time")
                    };
                    for (o, x) in out.chunks_exact_mut(*len).zip(value(0).chunks_exact(shape.cols)) {
                        o.copy_from_slice(&x[*start..start + len]);
                    }
                }
                Op::RmsNormRope {
                    eps,
                    head_dim,
                    cols: window,
                    ..
                } => {
                    prime(out);
                    let table = &self.rope[step.rope];
                    match window {
                        None => {
                            (kernels.rms_norm)(out, value(1), *head_dim, *eps, par);
                            (kernels.rope)(out, cols, ints(2), *head_dim, &table.cos, &table.sin);
                        }
                        // Columns of packed rows: row by row.
                        Some((start, len)) => {
                            let pos = ints(2);
                            for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                                let part = &mut row[*start..start + len];
                                (kernels.rms_norm)(part, value(1), *head_dim, *eps, Par::SERIAL);
                                (kernels.rope)(part, *len, &pos[r..r + 1], *head_dim, &table.cos, &table.sin);
                            }
                        }
                    }
                }
                Op::AddRmsNorm { eps } => {
                    prime(out);
                    (kernels.add_rms_norm)(out, value(1), value(2), *eps, par);
                }
                Op::FusedMatMul {
                    norm_eps,
                    geglu,
                    in_cols,
                } => {
                    let Arg::Value { shape: xs, .. } = step.args[0] else {
                        unreachable!("checked at compile time")
                    };
                    let x = match (norm_eps, in_cols) {
                        (Some(eps), _) => {
                            let (off, shape) = step.scratch.expect("norm matmul has scratch");
                            let normed = view_mut(off, len_of(&shape));
                            normed.copy_from_slice(value(0));
                            (kernels.rms_norm)(normed, value(1), xs.cols, *eps, par);
                            Activations::dense(normed, rows, xs.cols)
                        }
                        (None, Some((start, k))) => Activations {
                            data: &value(0)[*start..],
                            rows,
                            k: *k,
                            stride: xs.cols,
                        },
                        (None, None) => Activations::dense(value(0), rows, xs.cols),
                    };
                    let w = weight(step.args.len() - 1);
                    if *geglu {
                        (kernels.matmul_geglu)(x, w, out, cols, par);
                    } else {
                        (kernels.matmul)(x, w, out, cols, par);
                    }
                }
                Op::ResidualNorm { eps } => {
                    prime(out);
                    (kernels.residual_norm)(out, value(1), value(2), value(3), *eps, par);
                }
                Op::PoolHead {
                    kind,
                    n_dense,
                    normalize,
                } => {
                    let Arg::Value { shape: xs, .. } = step.args[0] else {
                        unreachable!("checked at compile time")
                    };
                    let (off, _) = step.scratch.expect("pool head has scratch");
                    // Scratch holds the pooled rows, then each dense output but the last.
                    let mut width = xs.cols;
                    let mut cur_off = off;
                    if *n_dense == 0 {
                        (kernels.pool)(value(0), width, batch.seqs, *kind, out);
                    } else {
                        (kernels.pool)(value(0), width, batch.seqs, *kind, view_mut(cur_off, s * width));
                    }
                    for d in 0..*n_dense {
                        let w = weight(1 + d);
                        let Arg::Weight(wid) = step.args[1 + d] else {
                            unreachable!()
                        };
                        let n_out = weights.get(wid).shape.rows_for(0, 0);
                        let x = view(cur_off, s * width);
                        if d + 1 == *n_dense {
                            (kernels.matmul)(Activations::dense(x, s, width), w, out, n_out, par);
                        } else {
                            let next_off = cur_off + s * width;
                            let dst = view_mut(next_off, s * n_out);
                            (kernels.matmul)(Activations::dense(x, s, width), w, dst, n_out, par);
                            cur_off = next_off;
                        }
                        width = n_out;
                    }
                    if *normalize {
                        (kernels.l2_norm)(out, cols);
                    }
                }
            }
        }
        Ok(())
    }
}
