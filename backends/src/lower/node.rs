//! What every op family lowers with: a node as selection sees it (its operands' kinds, types
//! and shapes, the checks that refuse what a kernel cannot take), what selection decides
//! ([`Lowered`]: scratch, and how to bind the steps), and the binder that turns a decision into
//! steps once the plan exists.

use std::collections::HashSet;
use std::sync::Arc;

use gg_graph::{Graph, GraphError, NodeId, Plan, ScratchNeed};
use gg_ops::{DType, InputKind, Op, Shape, WeightId};

use super::rope::{RopeTable, RopeTables};
use crate::backend::Precision;
use crate::fast::PackFn;
use crate::program::{Ctx, ExecError, Operands, Step, Val, Views};
use crate::table::{KernelTable, WeightKernels};
use crate::weights::PackSpec;

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

/// A node as selection sees it.
pub struct Node<'g> {
    pub graph: &'g Graph,
    pub id: NodeId,
    pub table: &'static KernelTable,
    pub precision: Precision,
    ins: Vec<NodeId>,
}

impl<'g> Node<'g> {
    pub fn new(graph: &'g Graph, id: NodeId, table: &'static KernelTable, precision: Precision) -> Node<'g> {
        Node {
            graph,
            id,
            table,
            precision,
            ins: graph.inputs(id),
        }
    }

    pub fn op(&self) -> &'g Op {
        &self.graph.node(self.id).op
    }

    /// Inputs the node has.
    pub fn n_inputs(&self) -> usize {
        self.ins.len()
    }

    /// Input `i`'s shape.
    pub fn shape(&self, i: usize) -> Shape {
        self.graph.node(self.ins[i]).shape
    }

    /// Input `i`'s element type.
    pub fn dtype(&self, i: usize) -> DType {
        self.graph.node(self.ins[i]).dtype
    }

    /// The node cannot run here: `what` says why.
    pub fn unsupported(&self, what: impl Into<String>) -> LowerError {
        LowerError::Unsupported {
            label: self.graph.node(self.id).label.clone(),
            op: self.op().name(),
            backend: self.table.backend.name(),
            what: what.into(),
        }
    }

    /// A shape past a kernel's limit.
    pub fn limit(&self, what: &'static str, value: usize, limit: usize) -> LowerError {
        LowerError::Limit {
            label: self.graph.node(self.id).label.clone(),
            op: self.op().name(),
            backend: self.table.backend.name(),
            what,
            value,
            limit,
        }
    }

    fn is_weight(&self, i: usize) -> bool {
        matches!(self.graph.node(self.ins[i]).op, Op::Weight(_))
    }

    /// Input `i` must be a weight.
    pub fn want_weight(&self, i: usize) -> Result<(), LowerError> {
        if self.is_weight(i) {
            Ok(())
        } else {
            Err(self.unsupported(format!(
                "input {i} must be a weight, is node {:?}",
                self.graph.node(self.ins[i]).label
            )))
        }
    }

    /// Input `i` must be a vector weight of f32 (norm scales, biases).
    pub fn want_f32_weight(&self, i: usize) -> Result<(), LowerError> {
        self.want_weight(i)?;
        match self.dtype(i) {
            DType::F32 => Ok(()),
            d => Err(self.unsupported(format!("input {i} must be an f32 vector weight, is {d}"))),
        }
    }

    /// Inputs `is` must be activations.
    pub fn want_values(&self, is: impl IntoIterator<Item = usize>) -> Result<(), LowerError> {
        for i in is {
            if self.is_weight(i) {
                return Err(self.unsupported(format!(
                    "input {i} must be an activation, is weight {:?}",
                    self.graph.node(self.ins[i]).label
                )));
            }
        }
        Ok(())
    }

    /// Input `i` must be the batch's input of `kind`.
    pub fn want_input(&self, i: usize, kind: InputKind) -> Result<(), LowerError> {
        if self.graph.node(self.ins[i]).op == Op::Input(kind) {
            Ok(())
        } else {
            Err(self.unsupported(format!(
                "input {i} must be the batch's {kind:?} input, is node {:?}",
                self.graph.node(self.ins[i]).label
            )))
        }
    }

    /// The tier's exact kernels for weight input `i`'s type.
    pub fn weight_kernels(&self, i: usize) -> Result<&'static WeightKernels, LowerError> {
        let d = self.dtype(i);
        self.table
            .weight(d)
            .ok_or_else(|| self.unsupported(format!("no kernel for {d} weights")))
    }
}

/// How a node's steps are bound once the plan exists.
pub type BindFn = Box<dyn FnOnce(&mut Binder<'_>) -> Result<(), LowerError>>;

/// What a family decided for a node: the scratch its steps need, and how to bind them.
pub struct Lowered {
    pub scratch: Option<ScratchNeed>,
    pub bind: BindFn,
}

impl Lowered {
    pub fn new(bind: impl FnOnce(&mut Binder<'_>) -> Result<(), LowerError> + 'static) -> Lowered {
        Lowered {
            scratch: None,
            bind: Box::new(bind),
        }
    }

    pub fn with_scratch(
        scratch: Option<ScratchNeed>,
        bind: impl FnOnce(&mut Binder<'_>) -> Result<(), LowerError> + 'static,
    ) -> Lowered {
        Lowered {
            scratch,
            bind: Box::new(bind),
        }
    }
}

/// What binding adds up to: the program's steps, packed weights, the weights read as stored,
/// the batch's inputs and the RoPE tables.
#[derive(Default)]
pub struct Parts {
    pub steps: Vec<Step>,
    pub packs: Vec<PackSpec>,
    pub read_as_stored: HashSet<WeightId>,
    pub inputs: Vec<(InputKind, Operands)>,
    pub rope: RopeTables,
}

/// One operand of a node, bound.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Value(Val),
    Weight(WeightId),
}

/// A node's operands bound to arena offsets, and where its steps go.
pub struct Binder<'a> {
    pub graph: &'a Graph,
    pub node: NodeId,
    pub table: &'static KernelTable,
    pub plan: &'a Plan,
    pub args: Vec<Arg>,
    pub out: Val,
    pub scratch: Option<Val>,
    pub parts: &'a mut Parts,
}

impl Binder<'_> {
    /// Input `i`, an activation (selection checked it is one).
    pub fn value(&self, i: usize) -> Val {
        match self.args[i] {
            Arg::Value(v) => v,
            Arg::Weight(_) => unreachable!("selection checked input {i} is an activation"),
        }
    }

    /// Input `i`, a weight the step reads as stored.
    pub fn weight(&mut self, i: usize) -> WeightId {
        let w = self.weight_id(i);
        self.parts.read_as_stored.insert(w);
        w
    }

    /// Input `i`, a weight, without saying how it is read.
    pub fn weight_id(&self, i: usize) -> WeightId {
        match self.args[i] {
            Arg::Weight(w) => w,
            Arg::Value(_) => unreachable!("selection checked input {i} is a weight"),
        }
    }

    /// Input `i`, a weight the step reads repacked by `pack` in `groups` row groups: the index of
    /// its packed copy (one per weight and grouping, however many steps read it).
    pub fn packed(&mut self, i: usize, groups: usize, pack: PackFn) -> usize {
        let weight = self.weight_id(i);
        let packs = &mut self.parts.packs;
        match packs.iter().position(|p| p.weight == weight && p.groups == groups) {
            Some(at) => at,
            None => {
                packs.push(PackSpec { weight, groups, pack });
                packs.len() - 1
            }
        }
    }

    /// The type of weight input `i`.
    pub fn weight_type(&self, i: usize) -> DType {
        self.graph.weights()[self.weight_id(i)].dtype
    }

    /// RoPE tables for every position the plan allows.
    pub fn rope(&self, base: f32, head_dim: usize) -> Arc<RopeTable> {
        self.parts.rope.get(base, head_dim, self.plan.max_tokens)
    }

    /// Push a step of the node: `kernel` (named here without the tier), reading the values of
    /// inputs `reads` (in that order in its views; an in-place op reads input 0 through its
    /// output and does not list it) and writing the node's output and scratch.
    pub fn step(
        &mut self,
        kernel: &str,
        reads: &[usize],
        run: impl Fn(&Ctx<'_>, Views<'_>) -> Result<(), ExecError> + Send + Sync + 'static,
    ) -> Result<(), LowerError> {
        let vals: Vec<Val> = reads.iter().map(|&i| self.value(i)).collect();
        self.push(kernel, self.out, &vals, self.scratch, Box::new(run))
    }

    /// Push a step with operands of its own.
    pub fn push(
        &mut self,
        kernel: &str,
        out: Val,
        reads: &[Val],
        scratch: Option<Val>,
        run: crate::program::RunFn,
    ) -> Result<(), LowerError> {
        let operands = Operands::check(out, reads, scratch, self.plan).map_err(|what| GraphError::Invalid {
            label: self.graph.node(self.node).label.clone(),
            what,
        })?;
        self.parts.steps.push(Step {
            node: self.node,
            kernel: format!("{}.{kernel}", self.table.backend.name()),
            operands,
            run,
        });
        Ok(())
    }
}
