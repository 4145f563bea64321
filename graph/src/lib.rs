//! The gemma-graph IR: the operator graph, its validation, the compiler passes, the static
//! buffer planner, and dumps. Knows ops, not models.

pub mod dump;
pub mod ir;
pub mod passes;
pub mod plan;

pub use dump::CompiledGraph;
pub use ir::{Graph, GraphError, Node, NodeId, WeightDesc, WeightSource};
pub use passes::{prerequisites, run_pipeline, PassRecord, Pipeline, PASSES};
pub use plan::{check_plan, plan, Plan, PlannedValue, Slot};
