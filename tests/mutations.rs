//! The fuzz targets' properties, run on stable in every CI run as random mutation tests
//! (`fuzz/` holds the cargo-fuzz targets for longer runs): the tokenizer on mutated real
//! texts and raw bytes, and saved-graph loading on mutated RON.

use gg_testing as common;

use common::tiny::{tiny_model_file, TinySpec};
use common::*;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization, Tokenizer};
use gemma_graph::ops::testing::XorShift;
use gemma_graph::{CompiledGraph, EmbedOptions, Model, ModelOptions};

/// Flip, insert, delete or duplicate bytes of `base`.
fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 if at < b.len() => b[at] ^= 1 << rng.below(8),
            1 => b.insert(at, rng.below(256) as u8),
            2 if at < b.len() => {
                b.remove(at);
            }
            _ => {
                let end = (at + rng.below(16)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
        }
    }
    b
}

#[test]
fn tokenizer_survives_mutated_texts() {
    let tok = Tokenizer::from_gguf(&Gguf::open(model_path()).unwrap()).unwrap();
    let texts: Vec<String> = read_jsonl(&golden_file("tokens.jsonl"))
        .iter()
        .take(400)
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    let mut rng = XorShift(0xface);
    for i in 0..4000 {
        let base = texts[i % texts.len()].as_bytes();
        let bytes = mutate(&mut rng, base);
        let text = String::from_utf8_lossy(&bytes);
        for control_literals in [ControlLiterals::Special, ControlLiterals::PlainText] {
            let opts = EncodeOptions {
                control_literals,
                normalization: if i % 2 == 0 {
                    Normalization::Identity
                } else {
                    Normalization::Nfkc
                },
                add_special: true,
                max_tokens: Some(2048),
            };
            let enc = tok.encode(&text, &opts);
            assert!(enc.ids.len() <= 2048, "case {i}");
            assert!(
                enc.ids.iter().all(|&id| tok.piece(id).is_some()),
                "case {i}: id outside the vocabulary"
            );
            let _ = tok.decode(&enc.ids);
        }
    }
}

#[test]
fn saved_graph_loading_survives_mutations() {
    let path = tiny_model_file("ron-mutations", &TinySpec::default());
    let options = ModelOptions {
        threads: 1,
        max_batch_tokens: 64,
        ..Default::default()
    };
    let model = Model::load_with(&path, &options, &gemma_graph::SentenceTransformersHead).unwrap();
    let ron = model.compiled().to_ron().unwrap();
    let mut rng = XorShift(0xbeef);
    let (mut parsed, mut loaded) = (0, 0);
    for _ in 0..600 {
        let bytes = mutate(&mut rng, ron.as_bytes());
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let Ok(compiled) = CompiledGraph::from_ron(text) else {
            continue;
        };
        parsed += 1;
        // Refused with an error, or loaded and then embedding gives finite vectors or an error.
        if let Ok(m) = Model::load_compiled(&path, &compiled, &options) {
            loaded += 1;
            if let Ok(out) = m.embed(&["hello world"], &EmbedOptions::default()) {
                assert!(out.vector(0).iter().all(|v| v.is_finite()));
            }
        }
    }
    eprintln!("{parsed} mutated graphs parsed, {loaded} loaded");
    assert!(parsed > 50, "the mutations should often keep RON parseable ({parsed})");
    std::fs::remove_file(path).ok();
}
