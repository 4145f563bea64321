//! Fuzz the GGUF reader: any input must parse or fail with an error, and everything a parsed
//! file offers (metadata values, tensor bytes and views) must be readable without a panic.
//!
//! `cargo fuzz run gguf_reader` (needs cargo-fuzz and a nightly toolchain, or
//! `RUSTC_BOOTSTRAP=1` on stable).
#![no_main]

use gg_loader::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::from_bytes(data) {
        for e in g.metadata() {
            let _ = g.value_to_json(&e.value);
        }
        for t in g.tensors() {
            let _ = g.tensor_bytes(t).len();
            let _ = g.tensor_data(t);
        }
        let _ = gg_loader::gemma::GemmaConfig::from_gguf(&g);
    }
});
