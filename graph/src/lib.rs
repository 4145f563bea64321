//! The gemma-graph IR: the operator graph, its validation, the compiler passes, the static
//! buffer planner, and dumps. Knows ops, not models.

#![forbid(unsafe_code)]

pub mod dump;
pub mod ir;
pub mod passes;
pub mod patch;
pub mod plan;

pub use dump::CompiledGraph;
pub use ir::{Graph, GraphError, Node, NodeId, WeightDesc, WeightSource};
pub use passes::{prerequisites, run_pipeline, PassRecord, Pipeline, DEFAULT_PIPELINE, PASSES};
pub use patch::Patch;
pub use plan::{check_plan, plan, plan_with_scratch, Plan, PlannedValue, ScratchNeed, Slot};
