//! Attention and what prepares its inputs: RoPE, and the per-head norm fused with it. The
//! kernels are the tier's table slots; lowering checks the attention kernel's limits (head
//! size, query heads per KV head) and binds the RoPE tables made for the plan's positions.

use gg_ops::InputKind;

use super::node::{LowerError, Lowered, Node};
use crate::kernels::{AttentionArgs, AttentionIo};
use crate::program::{f32s, f32s_mut, i32s};
use crate::scalar::attention::{MAX_GROUP, MAX_HEAD_DIM};

pub fn rope(node: &Node<'_>, base: f32, head_dim: usize) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    node.want_input(1, InputKind::Positions)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let t = b.rope(base, head_dim);
        let cols = b.out.cols;
        b.step("rope", &[1], move |_, v| {
            let pos = i32s(v.reads[0]);
            (table.rope)(f32s_mut(v.out), cols, pos, head_dim, &t.cos, &t.sin);
            Ok(())
        })
    }))
}

pub fn rms_norm_rope(
    node: &Node<'_>,
    eps: f32,
    head_dim: usize,
    base: f32,
    cols: Option<(usize, usize)>,
) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    node.want_f32_weight(1)?;
    node.want_input(2, InputKind::Positions)?;
    let table = node.table;
    Ok(Lowered::new(move |b| {
        let w = b.weight(1);
        let t = b.rope(base, head_dim);
        let width = b.out.cols;
        let window = cols.unwrap_or((0, width));
        b.step("rms_norm_rope", &[2], move |c, v| {
            let pos = i32s(v.reads[0]);
            let nw = c.weights.f32(w);
            (table.rms_norm_rope)(
                f32s_mut(v.out),
                width,
                window,
                nw,
                head_dim,
                eps,
                pos,
                &t.cos,
                &t.sin,
                c.par,
            );
            Ok(())
        })
    }))
}

/// Attention's shape as the op states it.
#[derive(Clone, Copy)]
pub struct Heads {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub window: Option<usize>,
    /// q, k and v packed in the rows of input 0, the output in place of q.
    pub packed: bool,
}

pub fn attention(node: &Node<'_>, h: Heads) -> Result<Lowered, LowerError> {
    node.want_values(0..node.n_inputs())?;
    if h.head_dim > MAX_HEAD_DIM {
        return Err(node.limit("the head dimension", h.head_dim, MAX_HEAD_DIM));
    }
    let group = h.n_heads / h.n_kv_heads.max(1);
    if group > MAX_GROUP {
        return Err(node.limit("query heads per kv head", group, MAX_GROUP));
    }
    let table = node.table;
    Ok(Lowered::new(move |b| {
        // The packed form reads its input in place (through the output); the other reads q, k, v.
        let reads: &[usize] = if h.packed { &[] } else { &[0, 1, 2] };
        b.step("attention", reads, move |c, v| {
            let io = if h.packed {
                AttentionIo::Packed { qkv: f32s_mut(v.out) }
            } else {
                AttentionIo::Separate {
                    q: f32s(v.reads[0]),
                    k: f32s(v.reads[1]),
                    v: f32s(v.reads[2]),
                    out: f32s_mut(v.out),
                }
            };
            let args = AttentionArgs {
                io,
                seqs: c.batch.seqs,
                row_seq: c.batch.row_seq,
                n_heads: h.n_heads,
                n_kv_heads: h.n_kv_heads,
                head_dim: h.head_dim,
                scale: h.scale,
                window: h.window,
            };
            (table.attention)(args, c.par);
            Ok(())
        })
    }))
}
