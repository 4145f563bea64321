//! A fine-tuned checkpoint's path: our converter's F16 output runs end to end, and being
//! closer to the float32 weights than Q8_0 is, its vectors are at least as close to
//! sentence-transformers' float32 ones as the Q8_0 reference's are (minus 1e-5).

use gg_testing as common;

use common::*;
use gemma_graph::loader::convert::{convert, OutType};
use gemma_graph::{EmbedOptions, Model};

#[test]
fn f16_conversion_runs_and_matches_float32_reference() {
    let out = std::env::temp_dir().join(format!("gemma-graph-test-{}-f16.gguf", std::process::id()));
    convert(&checkpoint_dir(), &out, OutType::F16).unwrap();
    let model = Model::load(&out).unwrap();
    let lines = read_jsonl(&golden_file("embeddings.jsonl"));
    let picked: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["ids"].as_array().unwrap().len() < 120)
        .take(12)
        .collect();
    let texts: Vec<&str> = picked.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let emb = model.embed(&texts, &EmbedOptions::default()).unwrap();
    for (i, l) in picked.iter().enumerate() {
        let f32v: Vec<f64> = l["st_f32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let q8w: Vec<f32> = l["st_q8w"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let ours = cosine(emb.vector(i), &f32v);
        let q8_gap = cosine(&q8w, &f32v);
        println!(
            "{}: cos(f16, st_f32) {ours:.6}, cos(st_q8w, st_f32) {q8_gap:.6}",
            l["id"]
        );
        assert!(ours >= q8_gap - 1e-5, "{}: {ours} < {q8_gap}", l["id"]);
        assert!(ours >= 0.99999, "{}: cos(f16, st_f32) {ours}", l["id"]);
    }
    std::fs::remove_file(&out).unwrap();
}
