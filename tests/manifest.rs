//! The converter's output, read back by our reader, equals what llama.cpp's converter wrote
//! (../shared/golden/manifest-*.json): every `gemma-embedding.*` and `tokenizer.ggml.*` key
//! with its type and value, and every tensor's name, type, dims, size and sha256.

use gg_testing as common;

use common::formats::{assert_no_diffs, diff_against_manifest, manifest_name};
use common::*;
use gemma_graph::loader::convert::{build_gguf, OutType};
use gemma_graph::loader::gguf::Gguf;

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

/// Every output type of `convert` equals what llama.cpp's quantizer writes from the F32 file
/// (../shared/golden/formats/manifest-<TYPE>.json): each tensor's type (llama.cpp's per-tensor
/// choice included), dims and sha256, every compared key, and `general.file_type`. Converted
/// fresh here (never from the cache); files that match are left in the cache for the golden
/// tests of `formats_golden.rs`.
#[test]
fn converter_matches_llama_quantize_for_every_type() {
    let mut failures = Vec::new();
    for ty in OutType::all() {
        let started = std::time::Instant::now();
        let bytes = build_gguf(&checkpoint_dir(), ty).unwrap().to_bytes();
        let g = Gguf::from_bytes(&bytes).unwrap();
        let diffs = diff_against_manifest(&g, &format!("formats/{}", manifest_name(ty)));
        println!(
            "{}: {} differences, {:.1} s",
            ty.name(),
            diffs.len(),
            started.elapsed().as_secs_f64()
        );
        if diffs.is_empty() {
            common::formats::store(ty, &bytes);
        } else {
            failures.push((ty, diffs));
        }
    }
    for (ty, diffs) in &failures {
        println!("{}: {} differences, first ones:", ty.name(), diffs.len());
        for d in diffs.iter().take(8) {
            println!("  {d}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} types differ from llama.cpp (see above)",
        failures.len()
    );
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
