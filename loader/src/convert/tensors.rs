//! Checkpoint tensors → GGUF tensors: names, the Gemma norm `+1`, and the output encoding.

use std::path::Path;

use half::f16;
use safetensors::{Dtype, SafeTensors};

use super::quantize::{encode, tensor_type};
use super::{ConvertError, DenseModule, OutType};
use crate::gguf::GgufWriter;

/// Hugging Face Gemma 3 tensor name → llama.cpp GGUF name.
fn gguf_name(hf: &str) -> Option<String> {
    if hf == "embed_tokens.weight" {
        return Some("token_embd.weight".into());
    }
    if hf == "norm.weight" {
        return Some("output_norm.weight".into());
    }
    let rest = hf.strip_prefix("layers.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let leaf = match leaf {
        "input_layernorm.weight" => "attn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "self_attn.q_norm.weight" => "attn_q_norm",
        "self_attn.k_norm.weight" => "attn_k_norm",
        "post_attention_layernorm.weight" => "post_attention_norm",
        "pre_feedforward_layernorm.weight" => "ffn_norm",
        "post_feedforward_layernorm.weight" => "post_ffw_norm",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{leaf}.weight"))
}

#[allow(unsafe_code)]
fn open(path: &Path) -> Result<memmap2::Mmap, ConvertError> {
    let file = std::fs::File::open(path).map_err(|e| ConvertError::io(path, e))?;
    // SAFETY: read-only map of a checkpoint that is not modified while we convert it.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ConvertError::io(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, ConvertError> {
    SafeTensors::deserialize(bytes).map_err(|source| ConvertError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

/// Add the dense-module tensors, then every checkpoint tensor in name order (as llama.cpp
/// iterates them).
pub(crate) fn add_tensors(
    w: &mut GgufWriter,
    dir: &Path,
    dense: &[DenseModule],
    ty: OutType,
    n_vocab: usize,
    n_layers: usize,
) -> Result<(), ConvertError> {
    let out = Out { ty, n_layers };
    for module in dense {
        let map = open(&module.path)?;
        let st = parse(&module.path, &map)?;
        let mut names: Vec<String> = st.names().into_iter().cloned().collect();
        names.sort();
        for name in names.iter().filter(|n| n.ends_with(".weight")) {
            let view = st.tensor(name).map_err(|source| ConvertError::Safetensors {
                path: module.path.clone(),
                source,
            })?;
            let leaf = name.strip_prefix("linear.").unwrap_or(name);
            add_one(
                w,
                &module.path,
                &format!("{}.{leaf}", module.prefix),
                &view,
                out,
                false,
                None,
            )?;
        }
    }

    let path = dir.join("model.safetensors");
    let map = open(&path)?;
    let st = parse(&path, &map)?;
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    for hf in &names {
        let hf_name = hf.strip_prefix("model.").unwrap_or(hf);
        let Some(name) = gguf_name(hf_name) else {
            return Err(ConvertError::invalid(&path, format!("unexpected tensor {hf:?}")));
        };
        let view = st.tensor(hf).map_err(|source| ConvertError::Safetensors {
            path: path.clone(),
            source,
        })?;
        // Gemma's RMSNorm multiplies by (1 + w); GGUF stores the sum.
        let shift = hf_name.ends_with("norm.weight");
        // Rows past the tokenizer's vocabulary are dropped.
        let max_rows = (name == "token_embd.weight").then_some(n_vocab);
        add_one(w, &path, &name, &view, out, shift, max_rows)?;
    }
    Ok(())
}

/// What the tensors are written as.
#[derive(Clone, Copy)]
struct Out {
    ty: OutType,
    n_layers: usize,
}

fn add_one(
    w: &mut GgufWriter,
    path: &Path,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
    out: Out,
    add_one_to_norm: bool,
    max_rows: Option<usize>,
) -> Result<(), ConvertError> {
    let mut shape = view.shape().to_vec();
    let mut values = to_f32(path, name, view)?;
    if let (Some(max), Some(rows)) = (max_rows, shape.first().copied()) {
        if rows > max {
            let cols: usize = shape[1..].iter().product();
            values.truncate(max * cols);
            shape[0] = max;
        }
    }
    if add_one_to_norm {
        for v in &mut values {
            *v += 1.0;
        }
    }
    let gtype = tensor_type(out.ty, name, &shape, out.n_layers);
    w.add_tensor(name, &shape, gtype, encode(&values, gtype));
    Ok(())
}

fn to_f32(path: &Path, name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, ConvertError> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ConvertError::invalid(
                path,
                format!("tensor {name:?} has dtype {other:?}; expected F32, F16 or BF16"),
            ))
        }
    })
}
