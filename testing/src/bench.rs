//! Shared by the benches: the real model and the benchmark texts.

use std::path::PathBuf;

pub use crate::shared_dir;

pub fn model_path() -> PathBuf {
    let p = gemma_graph::default_model_path();
    assert!(p.is_file(), "{} is missing: run scripts/fetch-model.sh", p.display());
    p
}

/// The `text` field of every line of a JSONL file.
pub fn texts(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}
