//! The weight types of ../shared/golden/formats: manifests to compare a file with, and files
//! of every type written by our converter, cached outside the clone (they are large) and
//! checked against the manifest before use, so a stale cache cannot pass for the converter.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gemma_graph::loader::convert::{build_gguf, OutType};
use gemma_graph::loader::gguf::Gguf;
use serde_json::Value as Json;

use crate::golden::*;

/// `manifest-Q4_K_M.json` for [`OutType::Q4KM`].
pub fn manifest_name(ty: OutType) -> String {
    format!("manifest-{}.json", ty.name().to_ascii_uppercase())
}

fn cache_path(ty: OutType) -> PathBuf {
    let base = std::env::var_os("GEMMA_GRAPH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/gemma-graph"));
    base.join("formats")
        .join(format!("embeddinggemma-300m-{}.gguf", ty.name().to_ascii_uppercase()))
}

/// Keep a converted file that matched its manifest (written whole, then renamed).
pub fn store(ty: OutType, bytes: &[u8]) {
    let path = cache_path(ty);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// A file of type `ty` written by our converter: from the cache when it still equals the
/// manifest, else converted now (and the conversion must equal the manifest).
pub fn model_file(ty: OutType) -> PathBuf {
    let path = cache_path(ty);
    let manifest = format!("formats/{}", manifest_name(ty));
    if let Ok(g) = Gguf::open(&path) {
        if diff_against_manifest(&g, &manifest).is_empty() {
            return path;
        }
    }
    let bytes = build_gguf(&checkpoint_dir(), ty).unwrap().to_bytes();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_no_diffs(
        diff_against_manifest(&g, &manifest),
        &format!("{} conversion", ty.name()),
    );
    store(ty, &bytes);
    path
}

fn compared_key(k: &str) -> bool {
    k.starts_with("gemma-embedding.") || k.starts_with("tokenizer.ggml.") || k == "general.file_type"
}

/// Every difference between `g` and the manifest, as readable lines.
pub fn diff_against_manifest(g: &Gguf, manifest_name: &str) -> Vec<String> {
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

pub fn assert_no_diffs(diffs: Vec<String>, what: &str) {
    assert!(
        diffs.is_empty(),
        "{what}: {} differences from llama.cpp's converter, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
