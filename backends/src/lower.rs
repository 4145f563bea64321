//! Lowering: the chosen backend tier picks, for every node, a concrete kernel from (op,
//! input element types, weight type, tier), says what scratch it needs, and checks the
//! kernel's limits — all at load, so an unsupported combination or a shape past a limit is
//! an error naming the node, the op and the limit, never a panic at embed time. The plan is
//! then made with those scratch needs, and each step becomes a closure over fixed arena
//! offsets that calls its kernel: the executor is a plain loop.

use std::collections::HashMap;
use std::sync::Arc;

use gg_graph::{Graph, GraphError, NodeId, Plan, ScratchNeed};
use gg_ops::{DType, InputKind, MatMulSpec, Op, Rows, Shape, WeightId};

use crate::composite;
use crate::exec::{Ctx, ExecError, Val};
use crate::fast::{qrow_words, FastKernels, PackFn, PanelForm, QMatMulFn, QRows, QuantizeRowsFn};
use crate::kernels::{Activations, AttentionArgs, AttentionIo, KernelTable};
use crate::scalar::attention::{MAX_GROUP, MAX_HEAD_DIM};
use crate::Precision;

/// Most dense layers one pooling-head step runs.
pub const MAX_DENSE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("node {label:?} ({op}) on the {backend} backend: {what}")]
    Unsupported {
        label: String,
        op: &'static str,
        backend: &'static str,
        what: String,
    },
    #[error("node {label:?} ({op}) on the {backend} backend: {what} is {value}, past the kernel's limit of {limit}")]
    Limit {
        label: String,
        op: &'static str,
        backend: &'static str,
        what: &'static str,
        value: usize,
        limit: usize,
    },
    #[error("the {precision} precision on the {backend} backend: {what}")]
    Precision {
        precision: &'static str,
        backend: &'static str,
        what: String,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
}

type RunFn = Box<dyn Fn(&Ctx<'_>) -> Result<(), ExecError> + Send + Sync>;

/// One resolved step: a kernel bound to its operands.
pub struct Step {
    pub node: NodeId,
    /// The kernel it runs (`avx2.matmul<q8_0>`, `scalar.rms_norm`, …).
    pub kernel: String,
    pub(crate) run: RunFn,
}

/// Where a graph output is.
#[derive(Clone, Copy, Debug)]
pub struct OutputSlot {
    pub node: NodeId,
    pub(crate) value: Val,
}

impl OutputSlot {
    pub fn cols(&self) -> usize {
        self.value.cols
    }
}

/// A weight a step reads repacked for its kernel: made once by
/// [`crate::WeightTable::prepare`], found by its index in [`Program::packs`].
#[derive(Clone, Copy)]
pub struct PackSpec {
    pub weight: WeightId,
    /// Row groups (2 for GeGLU's gate and up halves).
    pub groups: usize,
    pub pack: PackFn,
}

/// A graph lowered for one backend tier and one batch size.
pub struct Program {
    steps: Vec<Step>,
    packs: Vec<PackSpec>,
    /// Weights no step reads except through their packed copies.
    repacked_only: Vec<WeightId>,
    precision: Precision,
    inputs: Vec<(InputKind, Val)>,
    outputs: Vec<OutputSlot>,
    plan: Plan,
    backend: &'static str,
}

impl Program {
    pub fn max_tokens(&self) -> usize {
        self.plan.max_tokens
    }

    pub fn max_seqs(&self) -> usize {
        self.plan.max_seqs
    }

    pub fn arena_bytes(&self) -> usize {
        self.plan.arena_bytes
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn outputs(&self) -> &[OutputSlot] {
        &self.outputs
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub(crate) fn inputs(&self) -> &[(InputKind, Val)] {
        &self.inputs
    }

    pub fn n_steps(&self) -> usize {
        self.steps.len()
    }

    /// The weights to repack before running, in the order steps refer to them.
    pub fn packs(&self) -> &[PackSpec] {
        &self.packs
    }

    /// Weights that only packed kernels read: once repacked, the originals may leave memory.
    pub fn repacked_only(&self) -> &[WeightId] {
        &self.repacked_only
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The tier the program was lowered for.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Lower `graph` onto `table` for batches of up to `max_tokens` tokens in `max_seqs`
    /// sequences: kernels chosen (in `precision`) and limits checked per node, memory
    /// planned, steps bound.
    pub fn compile(
        graph: &Graph,
        table: &'static KernelTable,
        max_tokens: usize,
        max_seqs: usize,
        precision: Precision,
    ) -> Result<Program, LowerError> {
        graph.validate()?;
        check_precision(table, precision)?;
        let order = graph.topo_order()?;
        let mut choices = Vec::with_capacity(order.len());
        let mut scratch = HashMap::new();
        for &n in &order {
            if matches!(graph.node(n).op, Op::Weight(_)) {
                continue;
            }
            let choice = select(graph, n, table, precision)?;
            if let Some(need) = choice.scratch {
                scratch.insert(n, need);
            }
            choices.push((n, choice));
        }
        let plan = gg_graph::plan_with_scratch(graph, max_tokens, max_seqs, &scratch)?;
        let val = |n: NodeId| -> Result<Val, LowerError> {
            let slot = plan.slot(n).ok_or_else(|| GraphError::Invalid {
                label: graph.node(n).label.clone(),
                what: "the plan has no slot for it".into(),
            })?;
            let node = graph.node(n);
            Ok(Val {
                offset: slot.offset,
                dtype: node.dtype,
                rows: node.shape.rows,
                cols: node.shape.cols,
            })
        };
        let mut steps = Vec::new();
        let mut packs = Vec::new();
        let mut read_as_stored = std::collections::HashSet::new();
        let mut inputs = Vec::new();
        let rope = RopeCache::default();
        for (n, choice) in choices {
            let node = graph.node(n);
            let out = val(n)?;
            if let Op::Input(kind) = node.op {
                inputs.push((kind, out));
                continue;
            }
            let args = graph
                .inputs(n)
                .into_iter()
                .map(|i| match graph.node(i).op {
                    Op::Weight(w) => Ok(Arg::Weight(w)),
                    _ => val(i).map(Arg::Value),
                })
                .collect::<Result<Vec<_>, LowerError>>()?;
            let scratch = choice.scratch.zip(plan.scratch(n)).map(|(need, slot)| Val {
                offset: slot.offset,
                dtype: need.dtype,
                rows: need.shape.rows,
                cols: need.shape.cols,
            });
            let in_place = plan.value(n).is_some_and(|v| v.in_place);
            // Every weight a step reads as stored (a packed matmul reads its matrix, the last
            // input, packed).
            let read_packed = |i: usize| match choice.kernel {
                Kernel::PackedMatMul { .. } => i == args.len() - 1,
                Kernel::PoolHead { dense, .. } => i >= 1 && matches!(dense[i - 1], Some(Dense::Packed { .. })),
                _ => false,
            };
            for (i, a) in args.iter().enumerate() {
                if let Arg::Weight(w) = a {
                    if !read_packed(i) {
                        read_as_stored.insert(*w);
                    }
                }
            }
            check_disjoint(graph, n, out, &args, scratch, in_place, &plan)?;
            let bound = Bound {
                table,
                args,
                out,
                scratch,
                in_place,
                max_tokens: plan.max_tokens,
            };
            bound.emit(graph, n, choice, &rope, &mut steps, &mut packs)?;
        }
        let outputs = graph
            .outputs()
            .iter()
            .map(|&o| {
                Ok(OutputSlot {
                    node: o,
                    value: val(o)?,
                })
            })
            .collect::<Result<Vec<_>, LowerError>>()?;
        let mut repacked_only: Vec<WeightId> = packs
            .iter()
            .map(|p: &PackSpec| p.weight)
            .filter(|w| !read_as_stored.contains(w))
            .collect();
        repacked_only.sort_unstable();
        repacked_only.dedup();
        Ok(Program {
            steps,
            packs,
            repacked_only,
            precision,
            inputs,
            outputs,
            plan,
            backend: table.backend.name(),
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Arg {
    Value(Val),
    Weight(WeightId),
}

/// What selection decided for a node.
#[derive(Clone, Copy)]
struct Choice {
    kernel: Kernel,
    scratch: Option<ScratchNeed>,
}

/// The fast kernels a matmul over `dtype` weights with rows of `k` runs, if any. Float weights
/// have no quants of their own: the fast precision rounds them to wide panels, worth it over the
/// tokens of the encoder but not over a head's one row per text, where a user's f32 layer (a
/// classifier, a projection) keeps its exact weights.
fn fast_kernels(
    table: &KernelTable,
    precision: Precision,
    dtype: DType,
    k: usize,
    per_token: bool,
) -> Option<&'static FastKernels> {
    let rounds = matches!(dtype, DType::F32 | DType::F16 | DType::BF16);
    let fits = |fk: &&FastKernels| (per_token || !rounds) && k <= fk.max_k && k.is_multiple_of(crate::fast::QBLOCK);
    match precision {
        Precision::Exact => None,
        Precision::Fast => table.fast(dtype).filter(fits),
        // Float weights have no 8-bit quants: they run the fast kernels.
        Precision::Int8 => table
            .int8(dtype)
            .filter(fits)
            .or_else(|| table.fast(dtype).filter(fits)),
    }
}

/// Whether the tier can run `precision` on this CPU (int8 needs kernels of its own).
fn check_precision(table: &KernelTable, precision: Precision) -> Result<(), LowerError> {
    if precision != Precision::Int8 {
        return Ok(());
    }
    let err = |what: String| LowerError::Precision {
        precision: precision.name(),
        backend: table.backend.name(),
        what,
    };
    match table.int8 {
        None => Err(err(
            "this tier has no int8 kernels (8-bit products are no faster than the fast precision's 16-bit ones here); int8 runs on avx512 with VNNI, and on scalar".into(),
        )),
        Some(support) => match (support.missing)() {
            Some(feature) => Err(err(format!("the int8 kernels need {feature}, which this CPU lacks"))),
            None => Ok(()),
        },
    }
}

/// A pooling head's dense layer: the tier's exact matmul, or in the fast precision (for a
/// type with fast kernels) its integer kernels over the repacked weight.
#[derive(Clone, Copy)]
enum Dense {
    Exact(crate::kernels::MatMulFn),
    Packed {
        quantize: QuantizeRowsFn,
        f: QMatMulFn,
        pack: PackFn,
    },
}

/// The resolved kernel of a node; operands are bound later, once the plan exists.
#[derive(Clone, Copy)]
#[allow(clippy::large_enum_variant)] // one per node, made once at load
enum Kernel {
    Input,
    Embed {
        decode: crate::kernels::RowFn,
    },
    MatMul {
        f: crate::kernels::MatMulFn,
    },
    /// A matmul of the fast precision over repacked weights: its activations quantized (and
    /// normalized, for a fused norm) into the step's scratch, then the integer kernels.
    PackedMatMul {
        quantize: QuantizeRowsFn,
        f: QMatMulFn,
        pack: PackFn,
        /// The activations' integer type, for the step's name.
        act: &'static str,
    },
    PoolHead {
        dense: [Option<Dense>; MAX_DENSE],
        /// Where the quantized rows of the packed layers start in the scratch (f32 elements
        /// per sequence row).
        words_at: usize,
    },
    /// The tier's table slot for the op.
    Slot,
}

fn unsupported(graph: &Graph, n: NodeId, table: &KernelTable, what: impl Into<String>) -> LowerError {
    LowerError::Unsupported {
        label: graph.node(n).label.clone(),
        op: graph.node(n).op.name(),
        backend: table.backend.name(),
        what: what.into(),
    }
}

fn limit(graph: &Graph, n: NodeId, table: &KernelTable, what: &'static str, value: usize, limit: usize) -> LowerError {
    LowerError::Limit {
        label: graph.node(n).label.clone(),
        op: graph.node(n).op.name(),
        backend: table.backend.name(),
        what,
        value,
        limit,
    }
}

/// Pick the kernel for node `n`, check its limits and operand kinds, and say its scratch.
fn select(graph: &Graph, n: NodeId, table: &'static KernelTable, precision: Precision) -> Result<Choice, LowerError> {
    let node = graph.node(n);
    let ins = graph.inputs(n);
    let err = |what: String| unsupported(graph, n, table, what);
    let is_weight = |i: usize| matches!(graph.node(ins[i]).op, Op::Weight(_));
    // Operand kinds: which inputs must be weights, which activations.
    let want_weight = |i: usize| -> Result<(), LowerError> {
        if is_weight(i) {
            Ok(())
        } else {
            Err(err(format!(
                "input {i} must be a weight, is node {:?}",
                graph.node(ins[i]).label
            )))
        }
    };
    let want_value = |i: usize| -> Result<(), LowerError> {
        if is_weight(i) {
            Err(err(format!(
                "input {i} must be an activation, is weight {:?}",
                graph.node(ins[i]).label
            )))
        } else {
            Ok(())
        }
    };
    let want_input = |i: usize, kind: InputKind| -> Result<(), LowerError> {
        if graph.node(ins[i]).op == Op::Input(kind) {
            Ok(())
        } else {
            Err(err(format!(
                "input {i} must be the batch's {kind:?} input, is node {:?}",
                graph.node(ins[i]).label
            )))
        }
    };
    // Vector weights (norm scales) are f32.
    let want_f32_weight = |i: usize| -> Result<(), LowerError> {
        want_weight(i)?;
        match graph.node(ins[i]).dtype {
            DType::F32 => Ok(()),
            d => Err(err(format!("input {i} must be an f32 vector weight, is {d}"))),
        }
    };
    let weight_kernels = |i: usize| {
        let d = graph.node(ins[i]).dtype;
        table
            .weight(d)
            .map(|(k, _)| k)
            .ok_or_else(|| err(format!("no kernel for {d} weights")))
    };
    // Ops whose kernel is the tier's slot for the op, with no choice to record.
    let slot = Choice {
        kernel: Kernel::Slot,
        scratch: None,
    };
    match &node.op {
        Op::Input(_) => Ok(Choice {
            kernel: Kernel::Input,
            scratch: None,
        }),
        Op::Weight(_) => unreachable!("weights are skipped"),
        Op::Embed { .. } => {
            want_input(0, InputKind::TokenIds)?;
            want_weight(1)?;
            let k = weight_kernels(1)?;
            Ok(Choice {
                kernel: Kernel::Embed {
                    decode: k.dequantize_row,
                },
                scratch: None,
            })
        }
        Op::RmsNorm { .. } => {
            want_value(0)?;
            want_f32_weight(1)?;
            Ok(slot)
        }
        Op::MatMul(spec) => {
            want_value(0)?;
            if spec.norm_eps.is_some() {
                want_f32_weight(1)?;
            }
            let wi = ins.len() - 1;
            want_weight(wi)?;
            let k = weight_kernels(wi)?;
            let inner = graph.node(ins[wi]).shape.cols;
            if inner > k.max_k {
                return Err(limit(graph, n, table, "the row length k", inner, k.max_k));
            }
            let x = graph.node(ins[0]).shape;
            let fast = fast_kernels(
                table,
                precision,
                graph.node(ins[wi]).dtype,
                inner,
                x.rows == Rows::Tokens,
            );
            let (kernel, scratch) = match fast {
                Some(fk) => (
                    Kernel::PackedMatMul {
                        quantize: fk.quantize_rows,
                        f: if spec.geglu { fk.matmul_geglu_q } else { fk.matmul_q },
                        pack: fk.pack,
                        act: fk.act,
                    },
                    // The quantized activations (normalized first for a fused norm).
                    Some(ScratchNeed {
                        dtype: DType::I32,
                        shape: Shape {
                            rows: x.rows,
                            cols: qrow_words(inner),
                        },
                    }),
                ),
                None => (
                    Kernel::MatMul {
                        f: if spec.geglu { k.matmul_geglu } else { k.matmul },
                    },
                    // The normalized activations.
                    spec.norm_eps.map(|_| ScratchNeed {
                        dtype: DType::F32,
                        shape: x,
                    }),
                ),
            };
            Ok(Choice { kernel, scratch })
        }
        Op::Rope { .. } => {
            want_value(0)?;
            want_input(1, InputKind::Positions)?;
            Ok(slot)
        }
        Op::RmsNormRope { .. } => {
            want_value(0)?;
            want_f32_weight(1)?;
            want_input(2, InputKind::Positions)?;
            Ok(slot)
        }
        Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            ..
        } => {
            for i in 0..ins.len() {
                want_value(i)?;
            }
            if *head_dim > MAX_HEAD_DIM {
                return Err(limit(graph, n, table, "the head dimension", *head_dim, MAX_HEAD_DIM));
            }
            let group = n_heads / n_kv_heads.max(&1);
            if group > MAX_GROUP {
                return Err(limit(graph, n, table, "query heads per kv head", group, MAX_GROUP));
            }
            Ok(slot)
        }
        Op::AddRmsNorm { .. } => {
            want_value(0)?;
            want_value(1)?;
            want_f32_weight(2)?;
            Ok(slot)
        }
        Op::ResidualNorm { .. } => {
            want_value(0)?;
            want_value(1)?;
            want_f32_weight(2)?;
            want_f32_weight(3)?;
            Ok(slot)
        }
        Op::Gelu | Op::Scale(_) | Op::L2Norm | Op::Pool(_) | Op::SliceCols { .. } => {
            want_value(0)?;
            Ok(slot)
        }
        Op::Add | Op::Mul | Op::ConcatCols => {
            want_value(0)?;
            want_value(1)?;
            Ok(slot)
        }
        Op::Unary(_) | Op::Softmax => {
            want_value(0)?;
            Ok(slot)
        }
        Op::AddBias => {
            want_value(0)?;
            want_f32_weight(1)?;
            Ok(slot)
        }
        Op::LayerNorm { .. } => {
            want_value(0)?;
            want_f32_weight(1)?;
            want_f32_weight(2)?;
            Ok(slot)
        }
        Op::PoolHead { n_dense, .. } => {
            want_value(0)?;
            if *n_dense > MAX_DENSE {
                return Err(limit(
                    graph,
                    n,
                    table,
                    "the number of dense layers",
                    *n_dense,
                    MAX_DENSE,
                ));
            }
            let mut dense = [None; MAX_DENSE];
            // The pooled rows and every dense output but the last, then the quantized rows of
            // the widest packed layer's input.
            let (mut cols, mut k_in, mut words) = (graph.node(ins[0]).shape.cols, graph.node(ins[0]).shape.cols, 0);
            for d in 0..*n_dense {
                want_weight(1 + d)?;
                let k = weight_kernels(1 + d)?;
                let w = graph.node(ins[1 + d]).shape;
                if w.cols > k.max_k {
                    return Err(limit(graph, n, table, "a dense layer's row length k", w.cols, k.max_k));
                }
                let fast = fast_kernels(table, precision, graph.node(ins[1 + d]).dtype, w.cols, false)
                    .filter(|_| w.cols == k_in);
                dense[d] = Some(match fast {
                    Some(fk) => {
                        words = words.max(qrow_words(w.cols));
                        Dense::Packed {
                            quantize: fk.quantize_rows,
                            f: fk.matmul_q,
                            pack: fk.pack,
                        }
                    }
                    None => Dense::Exact(k.matmul),
                });
                if let Rows::Fixed(r) = w.rows {
                    if d + 1 < *n_dense {
                        cols += r;
                    }
                    k_in = r;
                }
            }
            Ok(Choice {
                kernel: Kernel::PoolHead { dense, words_at: cols },
                scratch: Some(ScratchNeed {
                    dtype: DType::F32,
                    shape: Shape::seqs(cols + words),
                }),
            })
        }
    }
}

/// Byte ranges a step touches at the plan's largest batch: inside the arena, and what it
/// writes (output, scratch) overlapping nothing else it touches — except an in-place output
/// and its input 0, which the step then never borrows separately. What makes the executor's
/// views sound.
fn check_disjoint(
    graph: &Graph,
    n: NodeId,
    out: Val,
    args: &[Arg],
    scratch: Option<Val>,
    in_place: bool,
    plan: &Plan,
) -> Result<(), LowerError> {
    let range = |v: Val| {
        let bytes = v.elements(plan.max_tokens, plan.max_seqs) * v.dtype.block_bytes();
        (v.offset, v.offset + bytes)
    };
    // (range, written)
    let mut ranges = vec![(range(out), true)];
    ranges.extend(scratch.map(|s| (range(s), true)));
    for (i, a) in args.iter().enumerate() {
        if let Arg::Value(v) = a {
            if !(in_place && i == 0) {
                ranges.push((range(*v), false));
            }
        }
    }
    let bad = |what: &str| -> LowerError {
        GraphError::Invalid {
            label: graph.node(n).label.clone(),
            what: what.into(),
        }
        .into()
    };
    for (i, &(r, written)) in ranges.iter().enumerate() {
        if r.1 > plan.arena_bytes {
            return Err(bad("a value ends past the arena"));
        }
        let clash = ranges[..i]
            .iter()
            .any(|&(s, w)| (w || written) && s.0 < r.1 && r.0 < s.1);
        if clash {
            return Err(bad("the plan overlaps what the step writes with what it reads"));
        }
    }
    Ok(())
}

/// RoPE cos/sin tables, shared by every step with the same base and head size.
#[derive(Default)]
struct RopeCache {
    tables: std::cell::RefCell<Vec<Arc<RopeTable>>>,
}

/// cos/sin of `pos · base^(−2i/hd)` for every position the plan allows.
struct RopeTable {
    base: f32,
    head_dim: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeCache {
    fn get(&self, base: f32, head_dim: usize, positions: usize) -> Arc<RopeTable> {
        let mut tables = self.tables.borrow_mut();
        if let Some(t) = tables.iter().find(|t| t.base == base && t.head_dim == head_dim) {
            return t.clone();
        }
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
        let t = Arc::new(RopeTable {
            base,
            head_dim,
            cos,
            sin,
        });
        tables.push(t.clone());
        t
    }
}

/// The index of weight `w`'s packed copy in `groups` row groups: one per (weight, grouping),
/// however many steps read it.
fn pack_index(packs: &mut Vec<PackSpec>, weight: WeightId, groups: usize, pack: PackFn) -> usize {
    match packs.iter().position(|p| p.weight == weight && p.groups == groups) {
        Some(i) => i,
        None => {
            packs.push(PackSpec { weight, groups, pack });
            packs.len() - 1
        }
    }
}

/// A matmul step's kernel name: `[norm_]matmul[_geglu]<types>`.
fn matmul_name(spec: &MatMulSpec, types: &str) -> String {
    format!(
        "{}{}<{types}>",
        if spec.norm_eps.is_some() { "norm_" } else { "" },
        if spec.geglu { "matmul_geglu" } else { "matmul" },
    )
}

/// A node's operands, bound to arena offsets.
struct Bound {
    table: &'static KernelTable,
    args: Vec<Arg>,
    out: Val,
    scratch: Option<Val>,
    in_place: bool,
    /// Positions stay below this (RoPE tables are made for it).
    max_tokens: usize,
}

impl Bound {
    fn value(&self, i: usize) -> Val {
        match self.args[i] {
            Arg::Value(v) => v,
            Arg::Weight(_) => unreachable!("selection checked input {i} is an activation"),
        }
    }

    fn weight(&self, i: usize) -> WeightId {
        match self.args[i] {
            Arg::Weight(w) => w,
            Arg::Value(_) => unreachable!("selection checked input {i} is a weight"),
        }
    }

    /// Push the node's steps: a copy of input 0 into the output first when an in-place
    /// kernel did not get its input's buffer, then the kernel.
    fn emit(
        self,
        graph: &Graph,
        n: NodeId,
        choice: Choice,
        rope: &RopeCache,
        steps: &mut Vec<Step>,
        packs: &mut Vec<PackSpec>,
    ) -> Result<(), LowerError> {
        let table = self.table;
        let tier = table.backend.name();
        let op = graph.node(n).op.clone();
        let out = self.out;
        let mut push = |kernel: &str, run: RunFn| {
            steps.push(Step {
                node: n,
                kernel: format!("{tier}.{kernel}"),
                run,
            })
        };
        if op.in_place_input() == Some(0) && !self.in_place {
            let x = self.value(0);
            let width = x.cols.min(out.cols);
            // SAFETY (this and every step below): lowering checked that `out` and `scratch`
            // overlap no value the step reads (but input 0 of an in-place step, which is
            // then not borrowed); every `Val` comes from the plan, inside the arena.
            push(
                "copy_cols",
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    let (src, dst) = unsafe { (c.f32s(x), c.f32s_mut(out)) };
                    (table.copy_cols)(src, x.cols, 0, dst, out.cols, width);
                    Ok(())
                }),
            );
        }
        let max_tokens = self.max_tokens;
        match (op, choice.kernel) {
            (Op::Embed { scale }, Kernel::Embed { decode }) => {
                let (ids, w) = (self.value(0), self.weight(1));
                push(
                    &format!("embed<{}>", graph.weights()[w].dtype),
                    Box::new(move |c| {
                        let view = c.weights.view(w);
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let ids = unsafe { c.i32s(ids) };
                        let vocab = view.rows();
                        if let Some((row, &id)) = ids.iter().enumerate().find(|(_, &id)| id < 0 || id as usize >= vocab)
                        {
                            return Err(ExecError::TokenOutOfRange { row, id, vocab });
                        }
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        (table.embed)(ids, view, decode, scale, unsafe { c.f32s_mut(out) });
                        Ok(())
                    }),
                );
            }
            (Op::RmsNorm { eps, group }, _) => {
                let w = self.weight(1);
                push(
                    "rms_norm",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        (table.rms_norm)(unsafe { c.f32s_mut(out) }, c.weights.f32(w), group, eps, c.par);
                        Ok(())
                    }),
                );
            }
            (Op::MatMul(spec), Kernel::MatMul { f }) => {
                let x = self.value(0);
                let w = self.weight(self.args.len() - 1);
                let MatMulSpec { norm_eps, in_cols, .. } = spec;
                let (start, k) = in_cols.unwrap_or((0, x.cols));
                let n_out = out.cols;
                let name = matmul_name(&spec, &graph.weights()[w].dtype.to_string());
                match norm_eps {
                    Some(eps) => {
                        let norm_w = self.weight(1);
                        let scratch = self.scratch.expect("selection planned the scratch");
                        push(
                            &name,
                            Box::new(move |c| {
                                // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                                let (xs, tmp, o) = unsafe { (c.f32s(x), c.f32s_mut(scratch), c.f32s_mut(out)) };
                                let (nw, wv) = (c.weights.f32(norm_w), c.weights.view(w));
                                composite::norm_matmul(table, f, xs, k, nw, eps, wv, tmp, o, c.par);
                                Ok(())
                            }),
                        );
                    }
                    None => push(
                        &name,
                        Box::new(move |c| {
                            // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                            let xs = unsafe { c.f32s(x) };
                            let rows = xs.len() / x.cols;
                            let acts = Activations {
                                data: &xs[start..],
                                rows,
                                k,
                                stride: x.cols,
                            };
                            // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                            f(acts, c.weights.view(w), unsafe { c.f32s_mut(out) }, n_out, c.par);
                            Ok(())
                        }),
                    ),
                }
            }
            (Op::MatMul(spec), Kernel::PackedMatMul { quantize, f, pack, act }) => {
                let x = self.value(0);
                let w = self.weight(self.args.len() - 1);
                let MatMulSpec { norm_eps, in_cols, .. } = spec;
                let (start, k) = in_cols.unwrap_or((0, x.cols));
                let n_out = out.cols;
                let groups = if spec.geglu { 2 } else { 1 };
                let name = matmul_name(&spec, &format!("{}×{act}", graph.weights()[w].dtype));
                let index = pack_index(packs, w, groups, pack);
                let norm = norm_eps.map(|eps| (eps, self.weight(1)));
                let scratch = self.scratch.expect("selection planned the scratch");
                push(
                    &name,
                    Box::new(move |c| {
                        let pw = c.weights.packed(index).ok_or(ExecError::NotPrepared { index })?;
                        // SAFETY: operands checked in bounds and disjoint from the output and the
                        // scratch at lowering.
                        let (xs, q, o) = unsafe { (c.f32s(x), c.i32s_mut(scratch), c.f32s_mut(out)) };
                        let rows = xs.len() / x.cols;
                        let acts = Activations {
                            data: &xs[start..],
                            rows,
                            k,
                            stride: x.cols,
                        };
                        let with_sums = pw.form() == PanelForm::Offset;
                        let words: &mut [u32] = bytemuck::cast_slice_mut(q);
                        let nw = norm.map(|(eps, nw)| (c.weights.f32(nw), eps));
                        quantize(acts, nw, words, with_sums, c.par);
                        f(&QRows::new(words, k, rows, with_sums), pw, o, n_out, c.par);
                        Ok(())
                    }),
                );
            }
            (Op::Rope { base, head_dim }, _) => {
                let pos = self.value(1);
                let t = rope.get(base, head_dim, max_tokens);
                push(
                    "rope",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (o, p) = unsafe { (c.f32s_mut(out), c.i32s(pos)) };
                        (table.rope)(o, out.cols, p, head_dim, &t.cos, &t.sin);
                        Ok(())
                    }),
                );
            }
            (
                Op::RmsNormRope {
                    eps,
                    head_dim,
                    base,
                    cols,
                },
                _,
            ) => {
                let (w, pos) = (self.weight(1), self.value(2));
                let t = rope.get(base, head_dim, max_tokens);
                push(
                    "rms_norm_rope",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (o, p) = unsafe { (c.f32s_mut(out), c.i32s(pos)) };
                        let nw = c.weights.f32(w);
                        let window = cols.unwrap_or((0, out.cols));
                        (table.rms_norm_rope)(o, out.cols, window, nw, head_dim, eps, p, &t.cos, &t.sin, c.par);
                        Ok(())
                    }),
                );
            }
            (
                Op::Attention {
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    scale,
                    window,
                    packed,
                },
                _,
            ) => {
                let separate = (!packed).then(|| (self.value(0), self.value(1), self.value(2)));
                push(
                    "attention",
                    Box::new(move |c| {
                        let io = match separate {
                            // SAFETY: see above; the packed form is in place on `out`.
                            None => AttentionIo::Packed {
                                // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                                qkv: unsafe { c.f32s_mut(out) },
                            },
                            // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                            Some((q, k, v)) => unsafe {
                                AttentionIo::Separate {
                                    q: c.f32s(q),
                                    k: c.f32s(k),
                                    v: c.f32s(v),
                                    out: c.f32s_mut(out),
                                }
                            },
                        };
                        let args = AttentionArgs {
                            io,
                            seqs: c.batch.seqs,
                            row_seq: c.batch.row_seq,
                            n_heads,
                            n_kv_heads,
                            head_dim,
                            scale,
                            window,
                        };
                        (table.attention)(args, c.par);
                        Ok(())
                    }),
                );
            }
            (Op::Gelu, _) => push(
                "gelu",
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    (table.gelu)(unsafe { c.f32s_mut(out) });
                    Ok(())
                }),
            ),
            (Op::Add, _) | (Op::Mul, _) => {
                let y = self.value(1);
                let f = if matches!(graph.node(n).op, Op::Add) {
                    table.add
                } else {
                    table.mul
                };
                push(
                    graph.node(n).op.name(),
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (o, ys) = unsafe { (c.f32s_mut(out), c.f32s(y)) };
                        f(o, ys);
                        Ok(())
                    }),
                );
            }
            (Op::LayerNorm { eps }, _) => {
                let (w, b) = (self.weight(1), self.weight(2));
                push(
                    "layer_norm",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        (table.layer_norm)(unsafe { c.f32s_mut(out) }, c.weights.f32(w), c.weights.f32(b), eps);
                        Ok(())
                    }),
                );
            }
            (Op::AddBias, _) => {
                let b = self.weight(1);
                push(
                    "add_bias",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        (table.add_bias)(unsafe { c.f32s_mut(out) }, c.weights.f32(b));
                        Ok(())
                    }),
                );
            }
            (Op::Unary(f), _) => push(
                Op::Unary(f).name(),
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    (table.unary)(unsafe { c.f32s_mut(out) }, f);
                    Ok(())
                }),
            ),
            (Op::Softmax, _) => push(
                "softmax",
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    (table.softmax)(unsafe { c.f32s_mut(out) }, out.cols);
                    Ok(())
                }),
            ),
            (Op::ConcatCols, _) => {
                let (a, b) = (self.value(0), self.value(1));
                push(
                    "concat_cols",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (xa, xb, o) = unsafe { (c.f32s(a), c.f32s(b), c.f32s_mut(out)) };
                        (table.concat_cols)(xa, a.cols, xb, b.cols, o);
                        Ok(())
                    }),
                );
            }
            (Op::Scale(factor), _) => push(
                "scale",
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    (table.scale)(unsafe { c.f32s_mut(out) }, factor);
                    Ok(())
                }),
            ),
            (Op::L2Norm, _) => push(
                "l2_norm",
                Box::new(move |c| {
                    // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                    (table.l2_norm)(unsafe { c.f32s_mut(out) }, out.cols);
                    Ok(())
                }),
            ),
            (Op::Pool(kind), _) => {
                let x = self.value(0);
                push(
                    "pool",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (xs, o) = unsafe { (c.f32s(x), c.f32s_mut(out)) };
                        (table.pool)(xs, x.cols, c.batch.seqs, kind, o);
                        Ok(())
                    }),
                );
            }
            (Op::SliceCols { start, len }, _) => {
                let x = self.value(0);
                push(
                    "copy_cols",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (xs, o) = unsafe { (c.f32s(x), c.f32s_mut(out)) };
                        (table.copy_cols)(xs, x.cols, start, o, len, len);
                        Ok(())
                    }),
                );
            }
            (Op::AddRmsNorm { eps }, _) => {
                let (a, w) = (self.value(1), self.weight(2));
                push(
                    "add_rms_norm",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (o, av) = unsafe { (c.f32s_mut(out), c.f32s(a)) };
                        (table.add_rms_norm)(o, av, c.weights.f32(w), eps, c.par);
                        Ok(())
                    }),
                );
            }
            (Op::ResidualNorm { eps }, _) => {
                let (a, w1, w2) = (self.value(1), self.weight(2), self.weight(3));
                push(
                    "residual_norm",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (o, av) = unsafe { (c.f32s_mut(out), c.f32s(a)) };
                        (table.residual_norm)(o, av, c.weights.f32(w1), c.weights.f32(w2), eps, c.par);
                        Ok(())
                    }),
                );
            }
            (
                Op::PoolHead {
                    kind,
                    n_dense,
                    normalize,
                },
                Kernel::PoolHead { dense, words_at },
            ) => {
                let x = self.value(0);
                let scratch = self.scratch.expect("selection planned the scratch");
                // Per layer: its weight, and the index of its packed copy if it runs packed.
                let mut layers = [(0usize, None::<usize>); MAX_DENSE];
                for (d, layer) in layers.iter_mut().enumerate().take(n_dense) {
                    let w = self.weight(1 + d);
                    let packed = match dense[d] {
                        Some(Dense::Packed { pack, .. }) => Some(pack_index(packs, w, 1, pack)),
                        _ => None,
                    };
                    *layer = (w, packed);
                }
                push(
                    "pool_head",
                    Box::new(move |c| {
                        // SAFETY: operands checked in bounds and disjoint from the output at lowering.
                        let (xs, tmp, o) = unsafe { (c.f32s(x), c.f32s_mut(scratch), c.f32s_mut(out)) };
                        let s = c.batch.seqs.len();
                        let (tmp, words) = tmp.split_at_mut(s * words_at);
                        let words: &mut [u32] = bytemuck::cast_slice_mut(words);
                        let mut packed = [None; MAX_DENSE];
                        for (p, &(_, index)) in packed.iter_mut().zip(&layers).take(n_dense) {
                            if let Some(index) = index {
                                *p = Some(c.weights.packed(index).ok_or(ExecError::NotPrepared { index })?);
                            }
                        }
                        let width = |d: usize| c.weights.view(layers[d].0).rows();
                        let run = |d: usize, acts: Activations<'_>, out: &mut [f32]| match (dense[d], packed[d]) {
                            (Some(Dense::Packed { quantize, f, .. }), Some(pw)) => {
                                let with_sums = pw.form() == PanelForm::Offset;
                                quantize(acts, None, words, with_sums, c.par);
                                f(
                                    &QRows::new(words, acts.k, acts.rows, with_sums),
                                    pw,
                                    out,
                                    width(d),
                                    c.par,
                                );
                            }
                            (Some(Dense::Exact(f)), _) => f(acts, c.weights.view(layers[d].0), out, width(d), c.par),
                            _ => unreachable!("every layer has a kernel, every packed one its copy"),
                        };
                        composite::pool_head(
                            table,
                            xs,
                            x.cols,
                            c.batch.seqs,
                            kind,
                            n_dense,
                            width,
                            run,
                            normalize,
                            tmp,
                            o,
                        );
                        Ok(())
                    }),
                );
            }
            (op, _) => {
                return Err(unsupported(
                    graph,
                    n,
                    table,
                    format!("no kernel was selected for {}", op.name()),
                ))
            }
        }
        Ok(())
    }
}
