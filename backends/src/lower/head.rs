//! The pooling head and what heads are made of: pooling, the fused pool → dense layers → L2
//! step (each dense layer on the tier's exact kernel, or in the fast precision on its integer
//! kernels over a packed copy, for types that have them), and column concatenation.

use gg_graph::ScratchNeed;
use gg_ops::{DType, PoolKind, Rows, Shape};

use super::matmul::fast_kernels;
use super::node::{LowerError, Lowered, Node};
use crate::composite;
use crate::fast::{qrow_words, PackFn, QMatMulFn, QRows, QuantizeRowsFn};
use crate::kernels::{Activations, MatMulFn};
use crate::program::{f32s, f32s_mut, ExecError};

/// Most dense layers one pooling-head step runs.
pub const MAX_DENSE: usize = 8;

pub fn pool(node: &Node<'_>, kind: PoolKind) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    let pool = node.table.pool;
    Ok(Lowered::new(move |b| {
        let cols = b.value(0).cols;
        b.step("pool", &[0], move |c, v| {
            pool(f32s(v.reads[0]), cols, c.batch.seqs, kind, f32s_mut(v.out));
            Ok(())
        })
    }))
}

pub fn concat_cols(node: &Node<'_>) -> Result<Lowered, LowerError> {
    node.want_values([0, 1])?;
    let concat = node.table.concat_cols;
    Ok(Lowered::new(move |b| {
        let (ca, cb) = (b.value(0).cols, b.value(1).cols);
        b.step("concat_cols", &[0, 1], move |_, v| {
            concat(f32s(v.reads[0]), ca, f32s(v.reads[1]), cb, f32s_mut(v.out));
            Ok(())
        })
    }))
}

/// A pooling head's dense layer: the tier's exact matmul, or in the fast precision (for a
/// type with fast kernels) its integer kernels over the repacked weight.
#[derive(Clone, Copy)]
enum Dense {
    Exact(MatMulFn),
    Packed {
        quantize: QuantizeRowsFn,
        f: QMatMulFn,
        pack: PackFn,
    },
}

pub fn pool_head(node: &Node<'_>, kind: PoolKind, n_dense: usize, normalize: bool) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    if n_dense > MAX_DENSE {
        return Err(node.limit("the number of dense layers", n_dense, MAX_DENSE));
    }
    let mut dense = [None; MAX_DENSE];
    // The pooled rows and every dense output but the last, then the quantized rows of the
    // widest packed layer's input.
    let (mut cols, mut k_in, mut words) = (node.shape(0).cols, node.shape(0).cols, 0);
    for (d, slot) in dense.iter_mut().enumerate().take(n_dense) {
        node.want_weight(1 + d)?;
        let k = node.weight_kernels(1 + d)?;
        let w = node.shape(1 + d);
        if w.cols > k.max_k {
            return Err(node.limit("a dense layer's row length k", w.cols, k.max_k));
        }
        let fast =
            fast_kernels(node.table, node.precision, node.dtype(1 + d), w.cols, false).filter(|_| w.cols == k_in);
        *slot = Some(match fast {
            Some(fk) => {
                words = words.max(qrow_words(w.cols));
                Dense::Packed {
                    quantize: fk.quantize_rows,
                    f: fk.matmul_q,
                    pack: fk.pack,
                }
            }
            None => Dense::Exact(k.matmul),
        });
        if let Rows::Fixed(r) = w.rows {
            if d + 1 < n_dense {
                cols += r;
            }
            k_in = r;
        }
    }
    let words_at = cols;
    let need = ScratchNeed {
        dtype: DType::F32,
        shape: Shape::seqs(cols + words),
    };
    let table = node.table;
    Ok(Lowered::with_scratch(Some(need), move |b| {
        let x = b.value(0);
        // Per layer: its weight, and the index of its packed copy if it runs packed.
        let mut layers = [(0usize, None::<usize>); MAX_DENSE];
        for (d, layer) in layers.iter_mut().enumerate().take(n_dense) {
            *layer = match dense[d] {
                Some(Dense::Packed { pack, .. }) => (b.weight_id(1 + d), Some(b.packed(1 + d, 1, pack))),
                _ => (b.weight(1 + d), None),
            };
        }
        b.step("pool_head", &[0], move |c, v| {
            let s = c.batch.seqs.len();
            let (tmp, words) = f32s_mut(v.scratch).split_at_mut(s * words_at);
            let words: &mut [u32] = bytemuck::cast_slice_mut(words);
            let mut packed = [None; MAX_DENSE];
            for (p, &(_, index)) in packed.iter_mut().zip(&layers).take(n_dense) {
                if let Some(index) = index {
                    *p = Some(c.weights.packed(index).ok_or(ExecError::NotPrepared { index })?);
                }
            }
            let width = |d: usize| match packed[d] {
                Some(pw) => pw.rows(),
                None => c.weights.view(layers[d].0).rows(),
            };
            let run = |d: usize, acts: Activations<'_>, out: &mut [f32]| match (dense[d], packed[d]) {
                (Some(Dense::Packed { quantize, f, .. }), Some(pw)) => {
                    let with_sums = pw.form().has_offsets();
                    quantize(acts, None, words, with_sums, c.par);
                    f(
                        &QRows::new(words, acts.k, acts.rows, with_sums),
                        pw,
                        out,
                        width(d),
                        c.par,
                    );
                }
                (Some(Dense::Exact(f)), _) => f(acts, c.weights.view(layers[d].0), out, width(d), c.par),
                _ => unreachable!("every layer has a kernel, every packed one its copy"),
            };
            composite::pool_head(
                table,
                f32s(v.reads[0]),
                x.cols,
                c.batch.seqs,
                kind,
                n_dense,
                width,
                run,
                normalize,
                tmp,
                f32s_mut(v.out),
            );
            Ok(())
        })
    }))
}
