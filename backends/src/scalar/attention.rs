//! Attention, written once over a backend's vector primitives ([`VecOps`]); the scalar
//! table instantiates it with [`ScalarOps`], the specification.
//!
//! Work unit: a block of up to [`ROW_BLOCK`] consecutive query rows of one sequence, times the
//! query heads that share one KV head (grouped-query attention). Every key and value row is
//! then loaded once for all of them. Keys are visited in blocks with a running maximum (the
//! online softmax of flash attention), so no T×T score matrix exists; the scratch (scores and
//! accumulators) lives on the stack. Rows are blocked by their position inside their
//! sequence, so a text's result does not depend on what else is in the batch.

use crate::kernels::{zeroed_prefix, AttentionArgs, AttentionIo, Par, SeqSpan, VecOps, KEY_BLOCK};
use crate::team::parallel_for;
use std::mem::MaybeUninit;

/// Query rows processed together.
pub const ROW_BLOCK: usize = 4;
/// Largest head size the stack accumulators hold.
pub const MAX_HEAD_DIM: usize = 512;
/// Most query heads per KV head.
pub const MAX_GROUP: usize = 8;
const MAX_QUERIES: usize = ROW_BLOCK * MAX_GROUP;

/// The reference vector primitives.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScalarOps;

impl VecOps for ScalarOps {
    #[inline]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        super::matmul::dot(a, b)
    }

    #[inline]
    fn axpy(self, acc: &mut [f32], p: f32, v: &[f32]) {
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
// SAFETY: work units own disjoint rows: each writes only its own rows' output columns (after
// it has read its own rows' q columns); the k and v columns every unit reads are never
// written (in the packed layout they follow the q/output columns of each row).
unsafe impl Send for Layout {}
// SAFETY: as above.
unsafe impl Sync for Layout {}

struct Dims {
    n_heads: usize,
    group: usize,
    hd: usize,
    scale: f32,
    window: Option<usize>,
}

/// Rows `first..first + n` of sequence `seq` (batch row numbers), all heads.
///
/// # Safety
/// `l` must point at buffers holding every row of the batch as laid out, and no other thread
/// may touch these rows' q/output columns while this runs.
unsafe fn attend_block<V: VecOps>(ops: V, l: Layout, d: &Dims, seq: SeqSpan, first: usize, n: usize) {
    let hd = d.hd;
    // Key range of each row (positions inside the sequence), and of the block.
    let reach = |i: usize| match d.window {
        Some(w) => (i.saturating_sub(w), (i + w).min(seq.len - 1)),
        None => (0, seq.len - 1),
    };
    let i0 = first - seq.start;
    let (lo, _) = reach(i0);
    // Keys every row of the block sees: from the last row's first to the first row's last.
    let (common_lo, hi) = reach(i0 + n - 1);
    let (_, common_hi) = reach(i0);
    let nq = n * d.group;
    let mut scores = [[0f32; KEY_BLOCK]; MAX_QUERIES];
    // Accumulators: room for the largest block, initialized only as far as this one uses.
    let mut acc_room = [MaybeUninit::<f32>::uninit(); MAX_QUERIES * MAX_HEAD_DIM];
    let acc = zeroed_prefix(&mut acc_room, nq * hd);
    let (mut m, mut sum) = ([f32::NEG_INFINITY; MAX_QUERIES], [0f32; MAX_QUERIES]);
    for kvh in 0..d.n_heads / d.group {
        // Query vector `qi` is row `first + qi / group`, head `kvh * group + qi % group`.
        let query = |qi: usize| {
            let (r, h) = (first + qi / d.group, kvh * d.group + qi % d.group);
            // SAFETY: inside the q buffer (caller's contract); read before any output of this
            // block is written.
            unsafe { std::slice::from_raw_parts(l.q.add(r * l.q_stride + h * hd), hd) }
        };
        // SAFETY: key/value row j < seq.len of this sequence, inside the buffers (caller's
        // contract); k and v columns are never written by any unit.
        let key =
            |j: usize| unsafe { std::slice::from_raw_parts(l.k.add((seq.start + j) * l.kv_stride + kvh * hd), hd) };
        // SAFETY: as for `key`.
        let val =
            |j: usize| unsafe { std::slice::from_raw_parts(l.v.add((seq.start + j) * l.kv_stride + kvh * hd), hd) };
        acc.fill(0.0);
        m[..nq].fill(f32::NEG_INFINITY);
        sum[..nq].fill(0.0);
        let queries: [&[f32]; MAX_QUERIES] = std::array::from_fn(|qi| if qi < nq { query(qi) } else { &[] });
        for b0 in (lo..=hi).step_by(KEY_BLOCK) {
            let b1 = (b0 + KEY_BLOCK).min(hi + 1);
            let keys: [&[f32]; KEY_BLOCK] = std::array::from_fn(|u| if b0 + u < b1 { key(b0 + u) } else { &[] });
            ops.scores(&queries[..nq], &keys[..b1 - b0], d.scale, &mut scores[..nq]);
            // Keys outside a row's window do not count. A block inside every row's window
            // (most blocks of a sliding layer, all of a global one) needs no mask.
            if b0 < common_lo || b1 - 1 > common_hi {
                for (qi, row_scores) in scores[..nq].iter_mut().enumerate() {
                    let (klo, khi) = reach(i0 + qi / d.group);
                    let row = &mut row_scores[..b1 - b0];
                    let before = klo.saturating_sub(b0).min(row.len());
                    let after = (khi + 1).saturating_sub(b0).clamp(before, row.len());
                    row[..before].fill(f32::NEG_INFINITY);
                    row[after..].fill(f32::NEG_INFINITY);
                }
            }
            for qi in 0..nq {
                let ps = &mut scores[qi][..b1 - b0];
                let m_new = m[qi].max(ops.max(ps));
                if m_new == f32::NEG_INFINITY {
                    ps.fill(0.0); // no key of this row yet
                    continue;
                }
                let correction = (m[qi] - m_new).exp();
                if correction != 1.0 {
                    ops.scale(&mut acc[qi * hd..(qi + 1) * hd], correction);
                    sum[qi] *= correction;
                }
                sum[qi] += ops.exp_sub_sum(ps, m_new);
                m[qi] = m_new;
            }
            let vals: [&[f32]; KEY_BLOCK] = std::array::from_fn(|u| if b0 + u < b1 { val(b0 + u) } else { &[] });
            ops.pv(acc, hd, &scores[..nq], &vals[..b1 - b0]);
        }
        for qi in 0..nq {
            let (r, h) = (first + qi / d.group, kvh * d.group + qi % d.group);
            let inv = 1.0 / sum[qi];
            // SAFETY: this block's row r, head h output; all of the block's q reads for this
            // KV head are done, and other KV heads' queries are other columns.
            let out = unsafe { std::slice::from_raw_parts_mut(l.out.add(r * l.out_stride + h * hd), hd) };
            for (o, a) in out.iter_mut().zip(&acc[qi * hd..(qi + 1) * hd]) {
                *o = a * inv;
            }
        }
    }
}

/// See `gg_ops::Op::Attention`.
pub fn attention(args: AttentionArgs<'_>, par: Par) {
    attention_with(ScalarOps, args, par)
}

/// The attention algorithm over a backend's vector primitives.
///
/// # Panics
/// Past the limits lowering checks at load ([`MAX_HEAD_DIM`], [`MAX_GROUP`]), or when the
/// buffers or sequence spans do not cover the batch's rows: the raw-pointer work below relies
/// on every one of them.
pub fn attention_with<V: VecOps>(ops: V, args: AttentionArgs<'_>, par: Par) {
    let (hd, nh, nkv) = (args.head_dim, args.n_heads, args.n_kv_heads);
    assert!(hd <= MAX_HEAD_DIM, "head dim {hd} > {MAX_HEAD_DIM}");
    assert!(
        nkv > 0 && nh % nkv == 0 && nh / nkv <= MAX_GROUP,
        "{nh} query heads over {nkv} kv heads (at most {MAX_GROUP} per kv head)"
    );
    let rows = args.row_seq.len();
    assert!(
        args.seqs.iter().all(|s| s.len > 0 && s.start + s.len <= rows),
        "sequence spans past the batch's {rows} rows"
    );
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
    let dims = Dims {
        n_heads: nh,
        group: nh / nkv,
        hd,
        scale: args.scale,
        window: args.window,
    };
    let seqs = args.seqs;
    let run = |(s, first): (SeqSpan, usize)| {
        let n = (s.start + s.len - first).min(ROW_BLOCK);
        // SAFETY: the buffers hold every row (asserted above); each block is one unit.
        unsafe { attend_block(ops, layout, &dims, s, first, n) }
    };
    // Work units: (sequence, first row of block), blocks counted from each sequence's start.
    // The blocks of one sequence run in parallel too: a single long text (one sequence)
    // would otherwise run its attention on one thread.
    let blocks = |s: &SeqSpan| s.len.div_ceil(ROW_BLOCK);
    if par.is_serial() {
        for &s in seqs {
            (0..blocks(&s)).for_each(|b| run((s, s.start + b * ROW_BLOCK)));
        }
    } else {
        let units = seqs.iter().map(blocks).sum();
        parallel_for(units, |mut u| {
            // Unit u → its sequence: a walk over the spans (a batch has few; each unit is
            // a whole block of attention).
            for &s in seqs {
                if u < blocks(&s) {
                    return run((s, s.start + u * ROW_BLOCK));
                }
                u -= blocks(&s);
            }
        });
    }
}
