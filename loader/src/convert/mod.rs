//! Converter: a sentence-transformers EmbeddingGemma checkpoint directory → GGUF v3.
//!
//! Writes what llama.cpp's `convert_hf_to_gguf.py --sentence-transformers-dense-modules`
//! writes (the same tensors, bytes, `gemma-embedding.*` and `tokenizer.ggml.*` keys), so the
//! output can be checked against the golden manifests bit for bit.

mod quantize;
mod sentencepiece;
mod tensors;
mod types;
mod vocab;

use std::path::Path;

use serde_json::Value as Json;

use crate::gguf::{GgufWriter, Value};

pub use sentencepiece::{read_pieces, Piece};
pub(crate) use types::{read_json, DenseModule};
pub use types::{ConvertError, OutType};
pub use vocab::{build_vocab, Vocab};

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub n_tensors: usize,
    pub n_keys: usize,
    pub bytes: u64,
}

/// Convert the checkpoint in `dir` and write the GGUF to `out`.
///
/// The file is written to `out` directly; callers that need atomicity write to a temporary
/// file and rename it ([`convert_into`]; the fetch script and the CLI do).
pub fn convert(dir: &Path, out: &Path, ty: OutType) -> Result<ConvertReport, ConvertError> {
    let file = std::fs::File::create(out).map_err(|e| ConvertError::io(out, e))?;
    convert_into(dir, ty, &file, out)
}

/// Convert the checkpoint in `dir` into the open file `out` (errors name it as `shown`); the
/// report's byte count is the file's length after writing.
pub fn convert_into(dir: &Path, ty: OutType, out: &std::fs::File, shown: &Path) -> Result<ConvertReport, ConvertError> {
    let writer = build_gguf(dir, ty)?;
    writer
        .write_to(std::io::BufWriter::with_capacity(1 << 20, out))
        .map_err(|e| ConvertError::io(shown, e))?;
    let bytes = out.metadata().map_err(|e| ConvertError::io(shown, e))?.len();
    Ok(ConvertReport {
        n_tensors: writer.n_tensors(),
        n_keys: writer.n_keys(),
        bytes,
    })
}

/// Build the whole GGUF in memory.
pub fn build_gguf(dir: &Path, ty: OutType) -> Result<GgufWriter, ConvertError> {
    let config_path = dir.join("config.json");
    let config = read_json(&config_path)?;
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Json::as_str)
        .unwrap_or("");
    if arch != "Gemma3TextModel" {
        return Err(ConvertError::invalid(
            &config_path,
            format!("architecture {arch:?} is not supported (expected Gemma3TextModel, i.e. EmbeddingGemma)"),
        ));
    }
    let uint = |key: &str| -> Result<u32, ConvertError> {
        config
            .get(key)
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ConvertError::invalid(&config_path, format!("missing or invalid integer {key:?}")))
    };
    let float = |key: &str, default: f64| config.get(key).and_then(Json::as_f64).unwrap_or(default) as f32;

    let mut w = GgufWriter::new();
    let a = "gemma-embedding";
    w.add("general.architecture", Value::String(a.into()));
    w.add("general.type", Value::String("model".into()));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    w.add("general.name", Value::String(name.into()));
    w.add(format!("{a}.block_count"), Value::U32(uint("num_hidden_layers")?));
    w.add(
        format!("{a}.context_length"),
        Value::U32(uint("max_position_embeddings")?),
    );
    w.add(format!("{a}.embedding_length"), Value::U32(uint("hidden_size")?));
    w.add(
        format!("{a}.feed_forward_length"),
        Value::U32(uint("intermediate_size")?),
    );
    w.add(
        format!("{a}.attention.head_count"),
        Value::U32(uint("num_attention_heads")?),
    );
    w.add(
        format!("{a}.attention.head_count_kv"),
        Value::U32(uint("num_key_value_heads")?),
    );
    w.add(
        format!("{a}.rope.freq_base"),
        Value::F32(float("rope_theta", 1_000_000.0)),
    );
    w.add(
        format!("{a}.rope.freq_base_swa"),
        Value::F32(float("rope_local_base_freq", 10_000.0)),
    );
    w.add(
        format!("{a}.attention.layer_norm_rms_epsilon"),
        Value::F32(float("rms_norm_eps", 1e-6)),
    );
    let head_dim = config.get("head_dim").and_then(Json::as_u64).unwrap_or(256) as u32;
    w.add(format!("{a}.attention.key_length"), Value::U32(head_dim));
    w.add(format!("{a}.attention.value_length"), Value::U32(head_dim));
    w.add("general.file_type", Value::U32(ty.file_type()));
    w.add(
        format!("{a}.attention.sliding_window"),
        Value::U32(uint("sliding_window")?),
    );

    let modules = read_modules(dir)?;
    for dense in &modules.dense {
        w.add(format!("{a}.{}_feat_in", dense.prefix), Value::U32(dense.in_features));
        w.add(format!("{a}.{}_feat_out", dense.prefix), Value::U32(dense.out_features));
    }
    if let Some(pooling) = modules.pooling_type {
        w.add(format!("{a}.pooling_type"), Value::U32(pooling));
    }
    w.add("general.quantization_version", Value::U32(2));

    let vocab_size = config.get("vocab_size").and_then(Json::as_u64).map(|v| v as usize);
    let vocab = build_vocab(dir, vocab_size)?;
    let n_vocab = vocab.tokens.len();
    w.add("tokenizer.ggml.model", Value::String("llama".into()));
    w.add("tokenizer.ggml.pre", Value::String("default".into()));
    w.add("tokenizer.ggml.tokens", Value::strings(vocab.tokens));
    w.add("tokenizer.ggml.scores", Value::f32s(vocab.scores));
    w.add("tokenizer.ggml.token_type", Value::i32s(vocab.types));
    for (name, id) in vocab.special_ids {
        w.add(format!("tokenizer.ggml.{name}_token_id"), Value::U32(id));
    }
    for (name, flag) in vocab.add_flags {
        w.add(format!("tokenizer.ggml.add_{name}_token"), Value::Bool(flag));
    }
    w.add("tokenizer.ggml.add_space_prefix", Value::Bool(false));

    let n_layers = uint("num_hidden_layers")? as usize;
    tensors::add_tensors(&mut w, dir, &modules.dense, ty, n_vocab, n_layers)?;
    Ok(w)
}

struct Modules {
    dense: Vec<DenseModule>,
    pooling_type: Option<u32>,
}

/// Dense and pooling modules from `modules.json` (absent file: no modules).
fn read_modules(dir: &Path) -> Result<Modules, ConvertError> {
    let path = dir.join("modules.json");
    let mut modules = Modules {
        dense: Vec::new(),
        pooling_type: None,
    };
    if !path.is_file() {
        return Ok(modules);
    }
    let list = read_json(&path)?;
    for m in list.as_array().into_iter().flatten() {
        let kind = m.get("type").and_then(Json::as_str).unwrap_or("");
        let sub = m.get("path").and_then(Json::as_str).unwrap_or("");
        let conf_path = dir.join(sub).join("config.json");
        match kind {
            "sentence_transformers.models.Dense" => {
                // A listed module without its weights would give a file whose head chain is
                // broken (dense_3 reading 3072 values from a 768-wide pooled vector).
                if !dir.join(sub).join("model.safetensors").is_file() {
                    return Err(ConvertError::invalid(
                        &path,
                        format!("lists the Dense module {sub:?}, but {sub}/model.safetensors is missing"),
                    ));
                }
                let conf = read_json(&conf_path)?;
                let feat = |k: &str| {
                    conf.get(k)
                        .and_then(Json::as_u64)
                        .map(|v| v as u32)
                        .ok_or_else(|| ConvertError::invalid(&conf_path, format!("missing {k:?}")))
                };
                modules.dense.push(DenseModule {
                    prefix: if sub == "2_Dense" { "dense_2" } else { "dense_3" },
                    path: dir.join(sub).join("model.safetensors"),
                    in_features: feat("in_features")?,
                    out_features: feat("out_features")?,
                });
            }
            "sentence_transformers.models.Pooling" => {
                let conf = read_json(&conf_path)?;
                let on = |k: &str| conf.get(k).and_then(Json::as_bool).unwrap_or(false);
                modules.pooling_type = if on("pooling_mode_mean_tokens") {
                    Some(1)
                } else if on("pooling_mode_cls_token") {
                    Some(2)
                } else if on("pooling_mode_lasttoken") {
                    Some(3)
                } else {
                    None
                };
            }
            _ => {}
        }
    }
    Ok(modules)
}
