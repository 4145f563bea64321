//! The EmbeddingGemma encoder as an operator graph, driven only by GGUF metadata.
//!
//! Per layer (see DESIGN.md): pre-norm attention with per-head Q/K norms and NEOX RoPE
//! (local base on sliding layers, global base on every sixth), a post-attention norm and
//! residual; then a pre-norm GeGLU feed-forward with a post-norm and residual. The graph
//! ends at the final norm, `[T, d_model]`; pooling heads are added on top by the caller.

use gg_graph::{Graph, GraphError, NodeId, WeightDesc, WeightSource};
use gg_ops::{InputKind, Op, Shape};

use super::config::GemmaConfig;
use crate::gguf::{Gguf, GgufError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(
        "tensor {tensor:?} has dims {} (innermost first, as `inspect` shows them), expected {}",
        gguf_order(found),
        gguf_order(expected)
    )]
    WrongShape {
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// Row-major `[rows, cols]` as GGUF lists dims: innermost first.
fn gguf_order(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().rev().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Add a model tensor to the graph's weight table, checking its type and shape.
/// `expected` is row-major; vectors are `[d]`.
pub fn add_weight(
    graph: &mut Graph,
    g: &Gguf,
    name: &str,
    expected: &[usize],
    layer: Option<usize>,
) -> Result<NodeId, BuildError> {
    let t = g.tensor(name)?;
    let dtype = t.ty.to_dtype().ok_or_else(|| GgufError::UnsupportedTensorType {
        tensor: name.into(),
        ty: t.ty.to_string(),
    })?;
    let shape = t.shape();
    if shape != expected {
        return Err(BuildError::WrongShape {
            tensor: name.into(),
            found: shape,
            expected: expected.to_vec(),
        });
    }
    let shape = match *expected {
        [d] => Shape::fixed(1, d),
        [rows, cols] => Shape::fixed(rows, cols),
        _ => unreachable!("weights are vectors or matrices"),
    };
    if expected.len() == 1 && dtype != gg_ops::DType::F32 {
        return Err(GgufError::WrongTensorType {
            tensor: name.into(),
            expected: "F32 (norm weights)",
            found: t.ty.to_string(),
        }
        .into());
    }
    Ok(graph.weight(
        WeightDesc {
            source: WeightSource::Tensor(name.into()),
            dtype,
            shape,
        },
        layer,
    ))
}

/// The encoder: returns the graph (no outputs set yet) and its `[T, d_model]` output.
pub fn build_encoder(g: &Gguf, c: &GemmaConfig) -> Result<(Graph, NodeId), BuildError> {
    let mut graph = Graph::new();
    let d = c.d_model;
    let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
    let ids = graph.input(InputKind::TokenIds);
    let pos = graph.input(InputKind::Positions);
    let table = add_weight(&mut graph, g, "token_embd.weight", &[c.vocab_size, d], None)?;
    // x = E[ids] · sqrt(d)
    let mut x = graph.add(
        Op::Embed {
            scale: (d as f32).sqrt(),
        },
        &[ids, table],
        "embed",
        None,
    )?;

    for l in 0..c.n_layers {
        let lw = |graph: &mut Graph, leaf: &str, shape: &[usize]| {
            add_weight(graph, g, &format!("blk.{l}.{leaf}.weight"), shape, Some(l))
        };
        let name = |s: &str| format!("blk.{l}.{s}");
        let norm = Op::RmsNorm {
            eps: c.rms_eps,
            group: d,
        };
        let head_norm = Op::RmsNorm {
            eps: c.rms_eps,
            group: hd,
        };
        let global = c.global_layers[l];
        let base = if global { c.rope_base_global } else { c.rope_base_local };

        let w = lw(&mut graph, "attn_norm", &[d])?;
        let h = graph.add(norm.clone(), &[x, w], name("attn_norm"), Some(l))?;
        // h (T, d) @ Wq (nh·hd, d)ᵀ -> (T, nh·hd); K and V -> (T, nkv·hd)
        let wq = lw(&mut graph, "attn_q", &[nh * hd, d])?;
        let wk = lw(&mut graph, "attn_k", &[nkv * hd, d])?;
        let wv = lw(&mut graph, "attn_v", &[nkv * hd, d])?;
        let q = graph.add(Op::matmul(), &[h, wq], name("attn_q"), Some(l))?;
        let k = graph.add(Op::matmul(), &[h, wk], name("attn_k"), Some(l))?;
        let v = graph.add(Op::matmul(), &[h, wv], name("attn_v"), Some(l))?;
        let wqn = lw(&mut graph, "attn_q_norm", &[hd])?;
        let wkn = lw(&mut graph, "attn_k_norm", &[hd])?;
        let q = graph.add(head_norm.clone(), &[q, wqn], name("attn_q_norm"), Some(l))?;
        let k = graph.add(head_norm, &[k, wkn], name("attn_k_norm"), Some(l))?;
        let q = graph.add(Op::Rope { base, head_dim: hd }, &[q, pos], name("rope_q"), Some(l))?;
        let k = graph.add(Op::Rope { base, head_dim: hd }, &[k, pos], name("rope_k"), Some(l))?;
        let attn = Op::Attention {
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            // query_pre_attn_scalar = head_dim for EmbeddingGemma.
            scale: 1.0 / (hd as f32).sqrt(),
            window: if global { None } else { c.local_reach() },
            packed: false,
        };
        let o = graph.add(attn, &[q, k, v], name("attention"), Some(l))?;
        let wo = lw(&mut graph, "attn_output", &[d, nh * hd])?;
        let a = graph.add(Op::matmul(), &[o, wo], name("attn_output"), Some(l))?;
        let w = lw(&mut graph, "post_attention_norm", &[d])?;
        let a = graph.add(norm.clone(), &[a, w], name("post_attention_norm"), Some(l))?;
        x = graph.add(Op::Add, &[x, a], name("attn_residual"), Some(l))?;

        let w = lw(&mut graph, "ffn_norm", &[d])?;
        let h = graph.add(norm.clone(), &[x, w], name("ffn_norm"), Some(l))?;
        let wg = lw(&mut graph, "ffn_gate", &[c.d_ff, d])?;
        let wu = lw(&mut graph, "ffn_up", &[c.d_ff, d])?;
        let gate = graph.add(Op::matmul(), &[h, wg], name("ffn_gate"), Some(l))?;
        let up = graph.add(Op::matmul(), &[h, wu], name("ffn_up"), Some(l))?;
        let gate = graph.add(Op::Gelu, &[gate], name("ffn_gelu"), Some(l))?;
        let f = graph.add(Op::Mul, &[gate, up], name("ffn_geglu"), Some(l))?;
        let wd = lw(&mut graph, "ffn_down", &[d, c.d_ff])?;
        let f = graph.add(Op::matmul(), &[f, wd], name("ffn_down"), Some(l))?;
        let w = lw(&mut graph, "post_ffw_norm", &[d])?;
        let f = graph.add(norm, &[f, w], name("post_ffw_norm"), Some(l))?;
        x = graph.add(Op::Add, &[x, f], name("ffn_residual"), Some(l))?;
    }
    let w = add_weight(&mut graph, g, "output_norm.weight", &[d], None)?;
    let x = graph.add(
        Op::RmsNorm {
            eps: c.rms_eps,
            group: d,
        },
        &[x, w],
        "output_norm",
        None,
    )?;
    Ok((graph, x))
}
