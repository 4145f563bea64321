//! The GGUF vocabulary llama.cpp's converter writes for a SentencePiece model: the pieces of
//! `tokenizer.model`, then `added_tokens.json` and `tokenizer_config.json`'s
//! `added_tokens_decoder` applied over them, plus the special-token ids and flags.

use std::path::Path;

use serde_json::Value as Json;

use super::sentencepiece::read_pieces;
use super::{read_json, ConvertError};
use crate::tokenizer::token_type as piece_type;

/// What goes into the `tokenizer.ggml.*` keys.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    /// (`bos`, `eos`, `unknown`, `padding`, ...) → id, in the order they are written.
    pub special_ids: Vec<(&'static str, u32)>,
    /// (`bos`, `eos`, `sep`) → whether the tokenizer adds it.
    pub add_flags: Vec<(&'static str, bool)>,
}

/// Tokens that llama.cpp treats as control even when not marked special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

pub fn build_vocab(dir: &Path, vocab_size: Option<usize>) -> Result<Vocab, ConvertError> {
    let model_path = dir.join("tokenizer.model");
    let bytes = std::fs::read(&model_path).map_err(|e| ConvertError::io(&model_path, e))?;
    let pieces = read_pieces(&bytes).map_err(|e| e.in_file(&model_path))?;
    let n = vocab_size.unwrap_or(pieces.len());

    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![piece_type::UNUSED; n];
    for (id, p) in pieces.iter().enumerate().take(n) {
        tokens[id] = p.piece.clone();
        scores[id] = p.score;
        // sentencepiece's IsUnknown/IsControl/IsUnused/IsByte; user-defined pieces read as
        // normal here and get their type from the added tokens below.
        types[id] = match p.kind {
            piece_type::UNKNOWN | piece_type::CONTROL | piece_type::UNUSED | piece_type::BYTE => p.kind,
            _ => piece_type::NORMAL,
        };
    }

    let added_path = dir.join("added_tokens.json");
    if added_path.is_file() {
        if let Json::Object(map) = read_json(&added_path)? {
            for (text, id) in map {
                let Some(id) = id.as_u64().map(|i| i as usize).filter(|&i| i < n) else {
                    continue;
                };
                tokens[id] = text;
                scores[id] = -1000.0;
                types[id] = piece_type::USER_DEFINED;
            }
        }
    }

    let config_path = dir.join("tokenizer_config.json");
    let config = if config_path.is_file() {
        read_json(&config_path)?
    } else {
        Json::Null
    };
    if let Some(Json::Object(decoder)) = config.get("added_tokens_decoder") {
        for (id, data) in decoder {
            let Some(id) = id.parse::<usize>().ok().filter(|&i| i < n) else {
                continue;
            };
            let Some(content) = data.get("content").and_then(Json::as_str) else {
                continue;
            };
            let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
            if special || looks_special(content) {
                types[id] = piece_type::CONTROL;
                tokens[id] = content.to_string();
            } else {
                types[id] = piece_type::USER_DEFINED;
                // Pre-normalize user-defined spaces, as llama.cpp's converter does.
                tokens[id] = content.replace('\u{2581}', " ");
            }
            scores[id] = -1000.0;
        }
    }

    let tokenizer_json_path = dir.join("tokenizer.json");
    let tokenizer_json = if tokenizer_json_path.is_file() {
        read_json(&tokenizer_json_path)?
    } else {
        Json::Null
    };
    let hf_config_path = dir.join("config.json");
    let hf_config = if hf_config_path.is_file() {
        read_json(&hf_config_path)?
    } else {
        Json::Null
    };

    let special_text = |typ: &str| -> Option<String> {
        match config.get(format!("{typ}_token")) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        }
    };
    let mut special_ids = Vec::new();
    for (typ, key) in [
        ("bos", "bos"),
        ("eos", "eos"),
        ("unk", "unknown"),
        ("sep", "seperator"),
        ("pad", "padding"),
    ] {
        let by_text = special_text(typ).and_then(|t| tokens.iter().position(|x| *x == t));
        let by_config = hf_config
            .get(format!("{typ}_token_id"))
            .and_then(Json::as_u64)
            .map(|i| i as usize);
        if let Some(id) = by_text.or(by_config).filter(|&i| i < n) {
            special_ids.push((key, id as u32));
        }
    }

    let add_flags = add_special_flags(&config, &tokenizer_json, special_text("bos"), special_text("eos"));
    Ok(Vocab {
        tokens,
        scores,
        types,
        special_ids,
        add_flags,
    })
}

/// `add_bos_token` / `add_eos_token` / `add_sep_token` as gguf-py's SpecialVocab derives
/// them: from the TemplateProcessing post-processor of `tokenizer.json`, overridden by
/// explicit booleans in `tokenizer_config.json`.
fn add_special_flags(
    config: &Json,
    tokenizer: &Json,
    bos: Option<String>,
    eos: Option<String>,
) -> Vec<(&'static str, bool)> {
    let mut flags: Vec<(&'static str, bool)> = Vec::new();
    let mut set = |name: &'static str, v: bool| match flags.iter_mut().find(|f| f.0 == name) {
        Some(f) => f.1 = v,
        None => flags.push((name, v)),
    };
    let special_id = |item: &Json| {
        item.get("SpecialToken")
            .and_then(|s| s.get("id"))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    let pp = tokenizer.get("post_processor");
    if pp.and_then(|p| p.get("type")).and_then(Json::as_str) == Some("TemplateProcessing") {
        let empty = Vec::new();
        let single = pp
            .and_then(|p| p.get("single"))
            .and_then(Json::as_array)
            .unwrap_or(&empty);
        let pair = pp
            .and_then(|p| p.get("pair"))
            .and_then(Json::as_array)
            .unwrap_or(&empty);
        let (mut first, mut last) = (None, None);
        if single.len() > 1 {
            first = special_id(&single[0]);
            if let Some(f) = &first {
                set("bos", Some(f) == bos.as_ref());
            }
            last = special_id(&single[single.len() - 1]);
            if let Some(l) = &last {
                set("eos", Some(l) == eos.as_ref());
            }
        }
        if !pair.is_empty() {
            let start = usize::from(first.is_some() && special_id(&pair[0]) == first);
            let stop = if last.is_some() && special_id(&pair[pair.len() - 1]) == last {
                pair.len() - 1
            } else {
                pair.len()
            };
            let inner = if start < stop { &pair[start..stop] } else { &[][..] };
            let seq = |item: &Json| {
                item.get("Sequence")
                    .and_then(|s| s.get("id"))
                    .and_then(Json::as_str)
                    .map(str::to_string)
            };
            if inner.len() > 2
                && seq(&inner[0]).as_deref() == Some("A")
                && seq(&inner[inner.len() - 1]).as_deref() == Some("B")
            {
                let middle = &inner[1..inner.len() - 1];
                let is_sep = |item: &Json| special_id(item).is_some_and(|s| Some(&s) == eos.as_ref());
                let mut add_sep = is_sep(&middle[0]) && last.is_none();
                if middle.len() == 2 && is_sep(&middle[1]) {
                    add_sep = true;
                }
                set("sep", add_sep);
            }
        }
    }
    for name in ["bos", "eos", "sep"] {
        if let Some(v) = config.get(format!("add_{name}_token")).and_then(Json::as_bool) {
            set(name, v);
        }
    }
    flags
}
