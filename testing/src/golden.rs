//! Where the golden data and the real model are, reading them, and the manifest format of
//! `../shared/golden/manifest-*.json`.

use std::path::PathBuf;

use gemma_graph::loader::gguf::{Gguf, MetaValue};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// `../shared/golden` next to the checkout (override: `GEMMA_GRAPH_GOLDEN`).
pub fn golden_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GEMMA_GRAPH_GOLDEN") {
        return PathBuf::from(d);
    }
    crate::shared_dir().join("golden")
}

pub fn golden_file(name: &str) -> PathBuf {
    let p = golden_dir().join(name);
    assert!(
        p.is_file(),
        "golden file {} is missing (set GEMMA_GRAPH_GOLDEN)",
        p.display()
    );
    p
}

/// The real model. Missing is a failure, not a skip: run `scripts/fetch-model.sh`.
pub fn model_path() -> PathBuf {
    let p = gemma_graph::default_model_path();
    assert!(
        p.is_file(),
        "the real model {} is missing: run scripts/fetch-model.sh (or set GEMMA_GRAPH_MODEL)",
        p.display()
    );
    p
}

/// The fetched sentence-transformers checkpoint.
pub fn checkpoint_dir() -> PathBuf {
    let p = gemma_graph::default_checkpoint_dir();
    assert!(
        p.join("model.safetensors").is_file(),
        "the checkpoint {} is missing: run scripts/fetch-model.sh",
        p.display()
    );
    p
}

pub fn read_jsonl(path: &std::path::Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{} line {}: {e}", path.display(), i + 1)))
        .collect()
}

/// Python's `repr(float)`, which `json.dumps` uses.
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Python's repr does.
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent");
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`.
pub fn py_json(v: &Json) -> String {
    match v {
        Json::Array(items) => format!("[{}]", items.iter().map(py_json).collect::<Vec<_>>().join(",")),
        Json::Number(n) if n.is_f64() => py_float(n.as_f64().unwrap()),
        other => serde_json::to_string(other).unwrap(),
    }
}

/// Cosine of our f32 vector with a reference (computed in f64).
pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// A JSON array of numbers, if it is one (`null` gives `None`).
pub fn vec_of(v: &serde_json::Value) -> Option<Vec<f64>> {
    v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// One metadata entry in the golden manifest format.
pub fn manifest_entry(g: &Gguf, v: &MetaValue) -> Json {
    let ty = v.type_name();
    match v {
        MetaValue::Array(a) if a.len > 16 => {
            let value = g.array_to_json(a);
            serde_json::json!({"type": ty, "len": a.len, "sha256": sha256_hex(py_json(&value).as_bytes())})
        }
        v => serde_json::json!({"type": ty, "value": g.value_to_json(v)}),
    }
}
