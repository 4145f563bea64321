//! Fuzz the tokenizer: any bytes (as lossy UTF-8) must encode without a panic, under every
//! option, and decode back; ids stay inside the vocabulary.
//!
//! `cargo fuzz run tokenizer` (needs the fetched model, or `GEMMA_GRAPH_MODEL`).
#![no_main]

use std::sync::OnceLock;

use gg_loader::gguf::Gguf;
use gg_loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization, Tokenizer};
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = std::env::var("GEMMA_GRAPH_MODEL").unwrap_or_else(|_| {
            format!(
                "{}/.cache/gemma-graph/embeddinggemma-300m-Q8_0.gguf",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        Tokenizer::from_gguf(&Gguf::open(path).expect("the fetched model")).expect("its tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tok = tokenizer();
    for control_literals in [ControlLiterals::Special, ControlLiterals::PlainText] {
        for normalization in [Normalization::Identity, Normalization::Nfkc] {
            let opts = EncodeOptions {
                control_literals,
                normalization,
                add_special: true,
                max_tokens: Some(2048),
            };
            let enc = tok.encode(&text, &opts);
            assert!(enc.ids.len() <= 2048);
            for &id in &enc.ids {
                assert!(tok.piece(id).is_some(), "id {id} outside the vocabulary");
            }
            let _ = tok.decode(&enc.ids);
        }
    }
});
