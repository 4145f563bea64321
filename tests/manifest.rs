//! The converter's output, read back by our reader, equals what llama.cpp's converter wrote
//! (../shared/golden/manifest-*.json): every `gemma-embedding.*` and `tokenizer.ggml.*` key
//! with its type and value, and every tensor's name, type, dims, size and sha256.

mod common;

use std::collections::BTreeMap;

use common::*;
use gemma_graph::loader::convert::{build_gguf, OutType};
use gemma_graph::loader::gguf::Gguf;
use serde_json::Value as Json;

fn compared_key(k: &str) -> bool {
    k.starts_with("gemma-embedding.") || k.starts_with("tokenizer.ggml.")
}

/// Every difference between `g` and the manifest, as readable lines.
fn diff_against_manifest(g: &Gguf, manifest_name: &str) -> Vec<String> {
    let manifest: Json = serde_json::from_str(&std::fs::read_to_string(golden_file(manifest_name)).unwrap()).unwrap();
    let mut diffs = Vec::new();

    let want_meta = manifest["metadata"].as_object().unwrap();
    let ours: BTreeMap<&str, Json> = g
        .metadata()
        .iter()
        .filter(|e| compared_key(&e.key))
        .map(|e| (e.key.as_str(), manifest_entry(g, &e.value)))
        .collect();
    for (k, want) in want_meta.iter().filter(|(k, _)| compared_key(k)) {
        let want = match want.as_object() {
            Some(o) => Json::Object(
                o.iter()
                    .filter(|(f, _)| *f != "head")
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect(),
            ),
            None => want.clone(),
        };
        match ours.get(k.as_str()) {
            None => diffs.push(format!("key {k}: missing (want {want})")),
            Some(got) if *got != want => diffs.push(format!("key {k}: got {got}, want {want}")),
            _ => {}
        }
    }
    for k in ours.keys().filter(|k| !want_meta.contains_key(**k)) {
        diffs.push(format!("key {k}: not in the manifest"));
    }

    let want_tensors: BTreeMap<&str, &Json> = manifest["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    for t in g.tensors() {
        let Some(want) = want_tensors.get(t.name.as_str()) else {
            diffs.push(format!("tensor {}: not in the manifest", t.name));
            continue;
        };
        let got = serde_json::json!({
            "name": t.name, "type": t.ty.to_string(), "shape": t.dims, "n_bytes": t.n_bytes,
            "sha256": sha256_hex(g.tensor_bytes(t)),
        });
        if got != **want {
            diffs.push(format!("tensor {}: got {got}, want {want}", t.name));
        }
    }
    for name in want_tensors.keys().filter(|n| !g.has_tensor(n)) {
        diffs.push(format!("tensor {name}: missing"));
    }
    diffs
}

fn assert_no_diffs(diffs: Vec<String>, what: &str) {
    assert!(
        diffs.is_empty(),
        "{what}: {} differences from llama.cpp's converter, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn fetched_q8_0_model_matches_llama_cpp_manifest() {
    let g = Gguf::open(model_path()).unwrap();
    assert_eq!(g.tensors().len(), 316);
    assert_no_diffs(diff_against_manifest(&g, "manifest-Q8_0.json"), "Q8_0 GGUF");
}

#[test]
fn converter_f16_output_matches_llama_cpp_manifest() {
    let bytes = build_gguf(&checkpoint_dir(), OutType::F16).unwrap().to_bytes();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_no_diffs(diff_against_manifest(&g, "manifest-F16.json"), "F16 GGUF");
}

#[test]
fn converter_q8_0_output_matches_llama_cpp_manifest() {
    let bytes = build_gguf(&checkpoint_dir(), OutType::Q8_0).unwrap().to_bytes();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_no_diffs(diff_against_manifest(&g, "manifest-Q8_0.json"), "Q8_0 conversion");
}

#[test]
fn py_float_matches_python_repr() {
    assert_eq!(py_float(-1000.0), "-1000.0");
    assert_eq!(py_float(0.949999988079071), "0.949999988079071");
    assert_eq!(py_float(9.999999974752427e-07), "9.999999974752427e-07");
    assert_eq!(py_float(1e16), "1e+16");
    assert_eq!(py_float(123456789012345.0), "123456789012345.0");
    assert_eq!(py_float(0.0001), "0.0001");
    assert_eq!(py_float(-2.5e-5), "-2.5e-05");
}
