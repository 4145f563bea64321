//! Matmuls: `MatMul` with its fused forms (a norm in front, GeGLU gate/up halves, a column
//! window of the input). The exact precision runs the tier's f32 kernels over the weights as
//! stored (a fused norm writes the normalized rows to scratch first); the fast and int8
//! precisions quantize the activations (normalizing them in the same pass) into scratch and run
//! the integer kernels over the weight's packed copy.

use gg_graph::ScratchNeed;
use gg_ops::{DType, MatMulSpec, Rows, Shape};

use super::node::{LowerError, Lowered, Node};
use crate::backend::Precision;
use crate::composite;
use crate::fast::{qrow_words, FastKernels, QRows, QBLOCK};
use crate::kernels::Activations;
use crate::program::{f32s, f32s_mut, u32s_mut, ExecError};
use crate::table::KernelTable;

/// The fast kernels a matmul over `dtype` weights with rows of `k` runs in `precision`, if any.
/// Float weights have no quants of their own: the fast precision rounds them to wide panels,
/// worth it over the tokens of the encoder but not over a head's one row per text, where a
/// user's f32 layer (a classifier, a projection) keeps its exact weights.
pub fn fast_kernels(
    table: &KernelTable,
    precision: Precision,
    dtype: DType,
    k: usize,
    per_token: bool,
) -> Option<&'static FastKernels> {
    let rounds = matches!(dtype, DType::F32 | DType::F16 | DType::BF16);
    let fits = |fk: &&FastKernels| (per_token || !rounds) && k <= fk.max_k && k.is_multiple_of(QBLOCK);
    match precision {
        Precision::Exact => None,
        Precision::Fast => table.fast(dtype).filter(fits),
        // Float weights have no 8-bit quants: they run the fast kernels.
        Precision::Int8 => table
            .int8(dtype)
            .filter(fits)
            .or_else(|| table.fast(dtype).filter(fits)),
    }
}

/// A matmul step's kernel name: `[norm_]matmul[_geglu]<types>`.
fn name(spec: &MatMulSpec, types: &str) -> String {
    format!(
        "{}{}<{types}>",
        if spec.norm_eps.is_some() { "norm_" } else { "" },
        if spec.geglu { "matmul_geglu" } else { "matmul" },
    )
}

pub fn matmul(node: &Node<'_>, spec: MatMulSpec) -> Result<Lowered, LowerError> {
    node.want_values([0])?;
    if spec.norm_eps.is_some() {
        node.want_f32_weight(1)?;
    }
    let wi = node.n_inputs() - 1;
    node.want_weight(wi)?;
    let exact = node.weight_kernels(wi)?;
    let inner = node.shape(wi).cols;
    if inner > exact.max_k {
        return Err(node.limit("the row length k", inner, exact.max_k));
    }
    let x = node.shape(0);
    let fast = fast_kernels(
        node.table,
        node.precision,
        node.dtype(wi),
        inner,
        x.rows == Rows::Tokens,
    );
    let (k_start, k) = spec.in_cols.unwrap_or((0, x.cols));
    let table = node.table;
    match fast {
        Some(fk) => {
            let (quantize, f, pack, act) = (
                fk.quantize_rows,
                if spec.geglu { fk.matmul_geglu_q } else { fk.matmul_q },
                fk.pack,
                fk.act,
            );
            // The quantized activations (normalized first for a fused norm).
            let need = ScratchNeed {
                dtype: DType::I32,
                shape: Shape {
                    rows: x.rows,
                    cols: qrow_words(inner),
                },
            };
            Ok(Lowered::with_scratch(Some(need), move |b| {
                let x = b.value(0);
                let norm = spec.norm_eps.map(|eps| (eps, b.weight(1)));
                let index = b.packed(wi, if spec.geglu { 2 } else { 1 }, pack);
                let w_type = b.weight_type(wi);
                let n_out = b.out.cols;
                b.step(&name(&spec, &format!("{w_type}×{act}")), &[0], move |c, v| {
                    let pw = c.weights.packed(index).ok_or(ExecError::NotPrepared { index })?;
                    let xs = f32s(v.reads[0]);
                    let rows = xs.len() / x.cols;
                    let acts = Activations {
                        data: &xs[k_start..],
                        rows,
                        k,
                        stride: x.cols,
                    };
                    let with_sums = pw.form().has_offsets();
                    let words = u32s_mut(v.scratch);
                    let nw = norm.map(|(eps, nw)| (c.weights.f32(nw), eps));
                    quantize(acts, nw, words, with_sums, c.par);
                    f(
                        &QRows::new(words, k, rows, with_sums),
                        pw,
                        f32s_mut(v.out),
                        n_out,
                        c.par,
                    );
                    Ok(())
                })
            }))
        }
        None => {
            let f = if spec.geglu { exact.matmul_geglu } else { exact.matmul };
            // The normalized activations.
            let need = spec.norm_eps.map(|_| ScratchNeed {
                dtype: DType::F32,
                shape: x,
            });
            Ok(Lowered::with_scratch(need, move |b| {
                let x = b.value(0);
                let w = b.weight(wi);
                let kernel = name(&spec, &b.weight_type(wi).to_string());
                let n_out = b.out.cols;
                match spec.norm_eps {
                    Some(eps) => {
                        let norm_w = b.weight(1);
                        b.step(&kernel, &[0], move |c, v| {
                            let (nw, wv) = (c.weights.f32(norm_w), c.weights.view(w));
                            let tmp = f32s_mut(v.scratch);
                            composite::norm_matmul(
                                table,
                                f,
                                f32s(v.reads[0]),
                                k,
                                nw,
                                eps,
                                wv,
                                tmp,
                                f32s_mut(v.out),
                                c.par,
                            );
                            Ok(())
                        })
                    }
                    None => b.step(&kernel, &[0], move |c, v| {
                        let xs = f32s(v.reads[0]);
                        let acts = Activations {
                            data: &xs[k_start..],
                            rows: xs.len() / x.cols,
                            k,
                            stride: x.cols,
                        };
                        f(acts, c.weights.view(w), f32s_mut(v.out), n_out, c.par);
                        Ok(())
                    }),
                }
            }))
        }
    }
}
