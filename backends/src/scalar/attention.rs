//! Scalar attention: per query row and head, keys are visited in blocks with a running
//! maximum (the "online softmax" of flash attention), so no T×T score matrix exists and
//! the only scratch is one block of scores on the stack.

use rayon::prelude::*;

use super::matmul::dot;
use crate::kernels::{AttentionArgs, Par};

/// Keys scored at a time.
const KEY_BLOCK: usize = 64;

/// `acc += p · v`
#[inline]
pub fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a += p * x;
    }
}

/// One query row `t` (all heads) into `out_row` (H·hd).
fn attend_row(a: &AttentionArgs<'_>, t: usize, out_row: &mut [f32]) {
    let hd = a.head_dim;
    let (q_cols, kv_cols) = (a.n_heads * hd, a.n_kv_heads * hd);
    let group = a.n_heads / a.n_kv_heads;
    let seq = a.seqs[a.row_seq[t] as usize];
    let i = t - seq.start;
    let (lo, hi) = match a.window {
        Some(w) => (i.saturating_sub(w), (i + w).min(seq.len - 1)),
        None => (0, seq.len - 1),
    };
    let mut scores = [0f32; KEY_BLOCK];
    for h in 0..a.n_heads {
        let kvh = h / group;
        let q = &a.q[t * q_cols + h * hd..][..hd];
        let acc = &mut out_row[h * hd..(h + 1) * hd];
        acc.fill(0.0);
        let (mut m, mut l) = (f32::NEG_INFINITY, 0f32);
        for b0 in (lo..=hi).step_by(KEY_BLOCK) {
            let b1 = (b0 + KEY_BLOCK).min(hi + 1);
            let mut block_max = f32::NEG_INFINITY;
            for j in b0..b1 {
                let k = &a.k[(seq.start + j) * kv_cols + kvh * hd..][..hd];
                let s = dot(q, k) * a.scale;
                scores[j - b0] = s;
                block_max = block_max.max(s);
            }
            let m_new = m.max(block_max);
            let correction = (m - m_new).exp();
            if correction != 1.0 {
                for x in acc.iter_mut() {
                    *x *= correction;
                }
                l *= correction;
            }
            for j in b0..b1 {
                let p = (scores[j - b0] - m_new).exp();
                l += p;
                axpy(acc, p, &a.v[(seq.start + j) * kv_cols + kvh * hd..][..hd]);
            }
            m = m_new;
        }
        let inv = 1.0 / l;
        for x in acc.iter_mut() {
            *x *= inv;
        }
    }
}

/// See `gg_ops::Op::Attention`.
pub fn attention(mut args: AttentionArgs<'_>, par: Par) {
    let q_cols = args.n_heads * args.head_dim;
    let rows = args.row_seq.len();
    let out = std::mem::take(&mut args.out);
    let out = &mut out[..rows * q_cols];
    if par.is_serial() {
        for (t, row) in out.chunks_exact_mut(q_cols).enumerate() {
            attend_row(&args, t, row);
        }
    } else {
        out.par_chunks_mut(q_cols)
            .enumerate()
            .for_each(|(t, row)| attend_row(&args, t, row));
    }
}
