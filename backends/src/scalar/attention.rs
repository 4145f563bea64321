//! Scalar attention: per query row and head, keys are visited in blocks with a running
//! maximum (the "online softmax" of flash attention), so no T×T score matrix exists and
//! the only scratch is one block of scores and one head of output on the stack.

use rayon::prelude::*;

use crate::kernels::{AttentionArgs, AttentionIo, Par, SeqSpan, VecOps};

/// Keys scored at a time.
const KEY_BLOCK: usize = 64;
/// Largest head size the stack accumulator holds.
pub const MAX_HEAD_DIM: usize = 512;

/// The reference vector primitives.
pub struct ScalarOps;

impl VecOps for ScalarOps {
    #[inline]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::matmul::dot(a, b)
    }

    #[inline]
    fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += p * x;
        }
    }
}

/// Raw view of the operands, so packed rows can be read and written in place.
#[derive(Clone, Copy)]
struct Layout {
    q: *const f32,
    k: *const f32,
    v: *const f32,
    out: *mut f32,
    q_stride: usize,
    kv_stride: usize,
    out_stride: usize,
}
// SAFETY: threads own disjoint rows: each writes only its own rows' output columns and reads
// its own rows' q columns; the k and v columns every thread reads are never written (in the
// packed layout they follow the q/output columns of each row).
unsafe impl Send for Layout {}
// SAFETY: as above.
unsafe impl Sync for Layout {}

struct Shape<'a> {
    seqs: &'a [SeqSpan],
    row_seq: &'a [u32],
    n_heads: usize,
    group: usize,
    hd: usize,
    scale: f32,
    window: Option<usize>,
}

/// One query row `t`, all heads.
///
/// # Safety
/// `l` must point at buffers holding every row of the batch as laid out, and no other thread
/// may touch row `t`'s q/output columns while this runs.
unsafe fn attend_row<V: VecOps>(l: Layout, s: &Shape<'_>, t: usize) {
    let hd = s.hd;
    let seq = s.seqs[s.row_seq[t] as usize];
    let i = t - seq.start;
    let (lo, hi) = match s.window {
        Some(w) => (i.saturating_sub(w), (i + w).min(seq.len - 1)),
        None => (0, seq.len - 1),
    };
    let mut scores = [0f32; KEY_BLOCK];
    let mut acc_buf = [0f32; MAX_HEAD_DIM];
    for h in 0..s.n_heads {
        let kvh = h / s.group;
        // SAFETY: row t's q head h is inside the q buffer (caller's contract); it is read
        // before this head's output is written over it (packed layout).
        let q = unsafe { std::slice::from_raw_parts(l.q.add(t * l.q_stride + h * hd), hd) };
        let key =
            |j: usize| unsafe { std::slice::from_raw_parts(l.k.add((seq.start + j) * l.kv_stride + kvh * hd), hd) };
        let val =
            |j: usize| unsafe { std::slice::from_raw_parts(l.v.add((seq.start + j) * l.kv_stride + kvh * hd), hd) };
        let acc = &mut acc_buf[..hd];
        acc.fill(0.0);
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
        for b0 in (lo..=hi).step_by(KEY_BLOCK) {
            let b1 = (b0 + KEY_BLOCK).min(hi + 1);
            let mut block_max = f32::NEG_INFINITY;
            for j in b0..b1 {
                let sc = V::dot(q, key(j)) * s.scale;
                scores[j - b0] = sc;
                block_max = block_max.max(sc);
            }
            let m_new = m.max(block_max);
            let correction = (m - m_new).exp();
            if correction != 1.0 {
                for x in acc.iter_mut() {
                    *x *= correction;
                }
                sum *= correction;
            }
            for j in b0..b1 {
                let p = (scores[j - b0] - m_new).exp();
                sum += p;
                V::axpy(acc, p, val(j));
            }
            m = m_new;
        }
        let inv = 1.0 / sum;
        // SAFETY: row t's output head h, owned by this call.
        let out = unsafe { std::slice::from_raw_parts_mut(l.out.add(t * l.out_stride + h * hd), hd) };
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o = a * inv;
        }
    }
}

/// See `gg_ops::Op::Attention`.
pub fn attention(args: AttentionArgs<'_>, par: Par) {
    attention_with::<ScalarOps>(args, par)
}

/// The attention algorithm over a backend's vector primitives.
pub fn attention_with<V: VecOps>(args: AttentionArgs<'_>, par: Par) {
    let (hd, nh, nkv) = (args.head_dim, args.n_heads, args.n_kv_heads);
    assert!(hd <= MAX_HEAD_DIM, "head dim {hd} > {MAX_HEAD_DIM}");
    let rows = args.row_seq.len();
    let (hq, hkv) = (nh * hd, nkv * hd);
    let layout = match args.io {
        AttentionIo::Separate { q, k, v, out } => {
            assert!(q.len() >= rows * hq && k.len() >= rows * hkv && v.len() >= rows * hkv && out.len() >= rows * hq);
            Layout {
                q: q.as_ptr(),
                k: k.as_ptr(),
                v: v.as_ptr(),
                out: out.as_mut_ptr(),
                q_stride: hq,
                kv_stride: hkv,
                out_stride: hq,
            }
        }
        AttentionIo::Packed { qkv } => {
            let w = hq + 2 * hkv;
            assert!(qkv.len() >= rows * w);
            let base = qkv.as_mut_ptr();
            // SAFETY: offsets hq and hq + hkv are within the first row.
            let (k, v) = unsafe { (base.add(hq) as *const f32, base.add(hq + hkv) as *const f32) };
            Layout {
                q: base,
                k,
                v,
                out: base,
                q_stride: w,
                kv_stride: w,
                out_stride: w,
            }
        }
    };
    let shape = Shape {
        seqs: args.seqs,
        row_seq: args.row_seq,
        n_heads: nh,
        group: nh / nkv,
        hd,
        scale: args.scale,
        window: args.window,
    };
    // SAFETY (both branches): the buffers hold `rows` rows (asserted above) and every row is
    // handled by exactly one call.
    if par.is_serial() {
        for t in 0..rows {
            unsafe { attend_row::<V>(layout, &shape, t) };
        }
    } else {
        (0..rows)
            .into_par_iter()
            .for_each(|t| unsafe { attend_row::<V>(layout, &shape, t) });
    }
}
