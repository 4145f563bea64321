//! The graph IR: nodes with one output each, edges labelled with the input slot they feed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use gg_ops::{DType, InputKind, Op, Shape, ShapeError};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

/// A node's id. Stable across removals.
pub type NodeId = NodeIndex<u32>;

/// Where a weight's bytes come from when the model is materialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightSource {
    /// A tensor of the model file, used as stored (zero copy).
    Tensor(String),
    /// These tensors' rows stacked in order, built once at compile time.
    ConcatRows(Vec<String>),
    /// A tensor of a file the user gave a pooling head (safetensors or npy), as f32.
    User { file: String, tensor: String },
}

/// One entry of the weight table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightDesc {
    pub source: WeightSource,
    pub dtype: DType,
    /// `[N, K]` for matrices, `[1, D]` for vectors.
    pub shape: Shape,
}

impl WeightDesc {
    /// A readable name: the tensor name, or the concatenated names joined by `+`.
    pub fn name(&self) -> String {
        match &self.source {
            WeightSource::Tensor(n) => n.clone(),
            WeightSource::ConcatRows(ns) => ns.join("+"),
            WeightSource::User { file, tensor } => format!("{tensor} ({file})"),
        }
    }
}

/// One node: an op, its output type, and what to call it in dumps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub dtype: DType,
    pub shape: Shape,
    /// e.g. `blk.3.attn_q`.
    pub label: String,
    /// The transformer layer the node belongs to, if any.
    pub layer: Option<usize>,
    /// For fused nodes: the ops this node replaced, in order.
    pub fused_from: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("node {label:?}: {source}")]
    Shape { label: String, source: ShapeError },
    #[error("node {label:?}: {what}")]
    Invalid { label: String, what: String },
    #[error("the graph has a cycle")]
    Cycle,
    #[error("the graph has no outputs")]
    NoOutputs,
}

/// The operator graph.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    g: StableDiGraph<Node, usize>,
    outputs: Vec<NodeId>,
    weights: Vec<WeightDesc>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// A per-batch input (`[T, 1]` i32).
    pub fn input(&mut self, kind: InputKind) -> NodeId {
        let label = match kind {
            InputKind::TokenIds => "token_ids",
            InputKind::Positions => "positions",
        };
        self.g.add_node(Node {
            op: Op::Input(kind),
            dtype: DType::I32,
            shape: Shape::tokens(1),
            label: label.into(),
            layer: None,
            fused_from: Vec::new(),
        })
    }

    /// Add a weight to the table and a node that reads it.
    pub fn weight(&mut self, desc: WeightDesc, layer: Option<usize>) -> NodeId {
        let id = self.weights.len();
        let node = Node {
            op: Op::Weight(id),
            dtype: desc.dtype,
            shape: desc.shape,
            label: desc.name(),
            layer,
            fused_from: Vec::new(),
        };
        self.weights.push(desc);
        self.g.add_node(node)
    }

    /// Add a compute node; its type is inferred from its inputs.
    pub fn add(
        &mut self,
        op: Op,
        inputs: &[NodeId],
        label: impl Into<String>,
        layer: Option<usize>,
    ) -> Result<NodeId, GraphError> {
        let label = label.into();
        let typed: Vec<(DType, Shape)> = inputs.iter().map(|&i| (self.g[i].dtype, self.g[i].shape)).collect();
        let (dtype, shape) = op.infer(&typed).map_err(|source| GraphError::Shape {
            label: label.clone(),
            source,
        })?;
        let id = self.g.add_node(Node {
            op,
            dtype,
            shape,
            label,
            layer,
            fused_from: Vec::new(),
        });
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i, id, slot);
        }
        Ok(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// A node's inputs in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// Nodes that read `id` (once each, even if they read it in several slots).
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut c: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Number of input slots, over all nodes, that read `id`.
    pub fn use_count(&self, id: NodeId) -> usize {
        self.g.edges_directed(id, Direction::Outgoing).count()
    }

    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }

    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.contains(&id)
    }

    pub fn weights(&self) -> &[WeightDesc] {
        &self.weights
    }

    /// The weight table entry read by a `Weight` node.
    pub fn weight_of(&self, id: NodeId) -> Option<&WeightDesc> {
        match self.g[id].op {
            Op::Weight(w) => self.weights.get(w),
            _ => None,
        }
    }

    /// Make every reader of `old` (and the output list) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let edges: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        for (target, slot) in edges {
            if let Some(e) = self.g.find_edge(old, target) {
                self.g.remove_edge(e);
            }
            self.g.add_edge(new, target, slot);
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Remove a node and its edges.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id)
    }

    /// Add a weight table entry without a node (passes create the node separately).
    pub fn add_weight_desc(&mut self, desc: WeightDesc) -> usize {
        self.weights.push(desc);
        self.weights.len() - 1
    }

    /// Drop weight table entries no node reads, renumbering the rest.
    pub fn compact_weights(&mut self) -> bool {
        let mut used = vec![false; self.weights.len()];
        for n in self.g.node_indices() {
            if let Op::Weight(w) = self.g[n].op {
                used[w] = true;
            }
        }
        if used.iter().all(|&u| u) {
            return false;
        }
        let mut new_id = vec![usize::MAX; self.weights.len()];
        let mut kept = Vec::new();
        for (i, desc) in std::mem::take(&mut self.weights).into_iter().enumerate() {
            if used[i] {
                new_id[i] = kept.len();
                kept.push(desc);
            }
        }
        self.weights = kept;
        let nodes: Vec<NodeId> = self.g.node_indices().collect();
        for n in nodes {
            if let Op::Weight(w) = &mut self.g[n].op {
                *w = new_id[*w];
            }
        }
        true
    }

    /// Compaction-free access for passes that need petgraph algorithms.
    pub fn petgraph(&self) -> &StableDiGraph<Node, usize> {
        &self.g
    }

    /// Execution order: a topological order that, among ready nodes, takes the one created
    /// first. Construction order follows the model's dataflow, which keeps few values live at
    /// once; petgraph's DFS-based toposort can hoist whole branches early and inflate the plan.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut pending: std::collections::HashMap<NodeId, usize> = self
            .g
            .node_indices()
            .map(|n| (n, self.g.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeId>> = pending
            .iter()
            .filter(|(_, &c)| c == 0)
            .map(|(&n, _)| Reverse(n))
            .collect();
        let mut order = Vec::with_capacity(pending.len());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let c = pending.get_mut(&e.target()).expect("node");
                *c -= 1;
                if *c == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
        if order.len() != self.g.node_count() {
            return Err(GraphError::Cycle);
        }
        Ok(order)
    }

    /// Check the whole graph: acyclic, every node's arity and slots, every stored type equal
    /// to what inference gives, weights in range, outputs present.
    pub fn validate(&self) -> Result<(), GraphError> {
        if petgraph::algo::is_cyclic_directed(&self.g) {
            return Err(GraphError::Cycle);
        }
        if self.outputs.is_empty() {
            return Err(GraphError::NoOutputs);
        }
        for id in self.g.node_indices() {
            let node = &self.g[id];
            let invalid = |what: String| GraphError::Invalid {
                label: node.label.clone(),
                what,
            };
            let mut slots: Vec<usize> = self
                .g
                .edges_directed(id, Direction::Incoming)
                .map(|e| *e.weight())
                .collect();
            slots.sort_unstable();
            if slots != (0..node.op.arity()).collect::<Vec<_>>() {
                return Err(invalid(format!(
                    "input slots {slots:?} for an op of arity {}",
                    node.op.arity()
                )));
            }
            match &node.op {
                Op::Input(_) => {
                    if (node.dtype, node.shape) != (DType::I32, Shape::tokens(1)) {
                        return Err(invalid("inputs are i32 [T, 1]".into()));
                    }
                }
                Op::Weight(w) => {
                    let desc = self
                        .weights
                        .get(*w)
                        .ok_or_else(|| invalid(format!("weight {w} is not in the table")))?;
                    if (desc.dtype, desc.shape) != (node.dtype, node.shape) {
                        return Err(invalid("weight node type differs from its table entry".into()));
                    }
                }
                op => {
                    let typed: Vec<(DType, Shape)> = self
                        .inputs(id)
                        .iter()
                        .map(|&i| (self.g[i].dtype, self.g[i].shape))
                        .collect();
                    let inferred = op.infer(&typed).map_err(|source| GraphError::Shape {
                        label: node.label.clone(),
                        source,
                    })?;
                    if inferred != (node.dtype, node.shape) {
                        return Err(invalid(format!(
                            "stored type {} {} but inputs give {} {}",
                            node.dtype, node.shape, inferred.0, inferred.1
                        )));
                    }
                }
            }
        }
        for &o in &self.outputs {
            if !self.g.contains_node(o) {
                return Err(GraphError::Invalid {
                    label: format!("{o:?}"),
                    what: "output node does not exist".into(),
                });
            }
        }
        Ok(())
    }
}
