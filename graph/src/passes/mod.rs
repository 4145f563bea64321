//! Compiler passes. Each is a small function over the graph that returns whether it changed
//! anything; the driver runs a pipeline, validating the graph after every pass and recording
//! what each did. Fusions document their pattern in one `/// Search pattern:` line.

mod dce;
mod fuse_geglu;
mod fuse_head;
mod fuse_norm_matmul;
mod fuse_norm_rope;
mod fuse_qkv;
mod fuse_residual;
mod fuse_residual_norm;
mod noop;
mod pack_attention;

use gg_ops::Op;
use serde::{Deserialize, Serialize};

use crate::ir::{Graph, GraphError, NodeId};

pub use dce::eliminate_dead;
pub use fuse_geglu::fuse_geglu;
pub use fuse_head::fuse_pool_head;
pub use fuse_norm_matmul::fold_norm_into_matmul;
pub use fuse_norm_rope::fuse_norm_rope;
pub use fuse_qkv::fuse_qkv;
pub use fuse_residual::fuse_post_norm_residual;
pub use fuse_residual_norm::fuse_residual_norm;
pub use noop::remove_noops;
pub use pack_attention::pack_attention;

/// A pass: rewrites the graph, returns whether anything changed.
pub type PassFn = fn(&mut Graph) -> Result<bool, GraphError>;

/// Every pass, by name (`--passes` takes any list of them), in the order the default
/// pipeline runs those it runs.
pub const PASSES: &[(&str, PassFn)] = &[
    ("remove-noops", remove_noops),
    // GeGLU first: gate and up are sibling matmuls too, but they get the GeGLU epilogue.
    ("fuse-geglu", fuse_geglu),
    ("fuse-qkv", fuse_qkv),
    ("fuse-norm-rope", fuse_norm_rope),
    ("pack-attention", pack_attention),
    ("fuse-post-norm-residual", fuse_post_norm_residual),
    // The alternative to folding the pre-norms into their matmuls (not in the default
    // pipeline): the norm after a residual add joins the add, the matmuls read its second half.
    ("fuse-residual-norm", fuse_residual_norm),
    ("fold-norm-into-matmul", fold_norm_into_matmul),
    ("fuse-pool-head", fuse_pool_head),
    ("dce", eliminate_dead),
];

/// The default pipeline. It folds every pre-norm into the matmul it feeds instead of fusing
/// it with the residual add before it (`fuse-residual-norm`): in the fast precision a matmul
/// with a folded norm quantizes each row as it normalizes it, so the normalized activations
/// never go to memory as f32.
pub const DEFAULT_PIPELINE: &[&str] = &[
    "remove-noops",
    "fuse-geglu",
    "fuse-qkv",
    "fuse-norm-rope",
    "pack-attention",
    "fuse-post-norm-residual",
    "fold-norm-into-matmul",
    "fuse-pool-head",
    "dce",
];

/// Passes whose pattern is another pass's output: running them alone finds nothing.
pub fn prerequisites(pass: &str) -> &'static [&'static str] {
    match pass {
        "pack-attention" => &["fuse-qkv", "fuse-norm-rope"],
        "fuse-residual-norm" => &["fuse-post-norm-residual"],
        _ => &[],
    }
}

/// Which passes to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pipeline {
    /// The unfused graph, as the model builder made it.
    None,
    /// The passes of [`DEFAULT_PIPELINE`].
    #[default]
    Default,
    /// These passes, in this order.
    Custom(Vec<String>),
}

impl std::str::FromStr for Pipeline {
    type Err = String;
    /// `none`, `default`, or a comma-separated list of pass names.
    fn from_str(s: &str) -> Result<Pipeline, String> {
        match s {
            "none" => Ok(Pipeline::None),
            "default" => Ok(Pipeline::Default),
            list => {
                let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
                for n in &names {
                    if !PASSES.iter().any(|(p, _)| p == n) {
                        let known: Vec<&str> = PASSES.iter().map(|p| p.0).collect();
                        return Err(format!(
                            "unknown pass {n:?}; known: none, default, {}",
                            known.join(", ")
                        ));
                    }
                }
                Ok(Pipeline::Custom(names))
            }
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    pub pass: String,
    pub changed: bool,
    pub nodes_before: usize,
    pub nodes_after: usize,
}

/// Run a pipeline, validating after every pass.
pub fn run_pipeline(graph: &mut Graph, pipeline: &Pipeline) -> Result<Vec<PassRecord>, GraphError> {
    let passes: Vec<(&str, PassFn)> = match pipeline {
        Pipeline::None => Vec::new(),
        Pipeline::Default => DEFAULT_PIPELINE
            .iter()
            .map(|n| *PASSES.iter().find(|(p, _)| p == n).expect("default passes are known"))
            .collect(),
        Pipeline::Custom(names) => names
            .iter()
            .map(|n| {
                PASSES
                    .iter()
                    .find(|(p, _)| p == n)
                    .copied()
                    .ok_or_else(|| GraphError::Invalid {
                        label: n.clone(),
                        what: "no such pass".into(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut records = Vec::new();
    for (name, pass) in passes {
        let before = graph.node_count();
        let changed = pass(graph)?;
        graph.validate().map_err(|e| GraphError::Invalid {
            label: name.to_string(),
            what: format!("graph invalid after the pass: {e}"),
        })?;
        records.push(PassRecord {
            pass: name.to_string(),
            changed,
            nodes_before: before,
            nodes_after: graph.node_count(),
        });
    }
    Ok(records)
}

/// Whether `c` is a plain matmul (no norm, no column window) reading `n` as its
/// activations and nowhere else — the shape a norm can be folded into.
pub(crate) fn plain_matmul_of(g: &Graph, c: NodeId, n: NodeId) -> bool {
    let ins = g.inputs(c);
    matches!(
        g.node(c).op,
        Op::MatMul(gg_ops::MatMulSpec {
            norm_eps: None,
            in_cols: None,
            ..
        })
    ) && ins[0] == n
        && ins[1..].iter().all(|&i| i != n)
}

/// The only consumer of `n`, if it has exactly one (and `n` is not an output).
pub(crate) fn sole_consumer(g: &Graph, n: NodeId) -> Option<NodeId> {
    let c = g.consumers(n);
    (c.len() == 1 && g.use_count(n) == 1 && !g.is_output(n)).then(|| c[0])
}
