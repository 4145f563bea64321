//! Our dequantization of every weight type is the specification's: value for value (bit for
//! bit) what the `gguf` Python package (llama.cpp's reference dequantization, which made the
//! golden `st_w` vectors) gives for the same tensor of a real file of that type.
//!
//! `scripts/check.sh` makes a venv with `gguf` and numpy and points `GEMMA_GRAPH_PYTHON` at it;
//! there the check is required. Elsewhere it is skipped when the package is missing.

use gg_testing as common;

use std::process::Command;

use common::formats::model_file;
use gemma_graph::backends::wtypes;
use gemma_graph::loader::convert::OutType;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::ops::WeightView;

/// Compares every `(type, raw tensor bytes file, our values file)` triple: the tensor's bytes
/// as the file stores them, dequantized by `gguf.quants.dequantize`.
const SCRIPT: &str = r#"
import sys, numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize
args = sys.argv[1:]
for name, ty, raw, ours in zip(args[0::4], args[1::4], args[2::4], args[3::4]):
    qtype = GGMLQuantizationType[ty]
    ref = np.asarray(dequantize(np.fromfile(raw, dtype=np.uint8), qtype), dtype=np.float32).reshape(-1)
    got = np.fromfile(ours, dtype="<f4")
    assert ref.shape == got.shape, (name, ref.shape, got.shape)
    bad = np.flatnonzero(ref.view(np.uint32) != got.view(np.uint32))
    if bad.size:
        i = bad[0]
        sys.exit(f"{name} ({ty}): {bad.size} of {ref.size} values differ, first at {i}: ours {got[i]!r}, gguf {ref[i]!r}")
    print(f"{name} ({ty}): {ref.size} values equal")
"#;

/// Tensor `name` of the `ty` file: its raw bytes and our dequantization, in temporary files;
/// the arguments the script takes for it.
fn case(ty: OutType, name: &str, files: &mut Vec<std::path::PathBuf>) -> Vec<String> {
    let g = Gguf::open(model_file(ty)).unwrap();
    let t = g.tensor(name).unwrap();
    let dtype = t.ty.to_dtype().unwrap();
    let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
    let view = WeightView::new(dtype, rows, cols, g.tensor_bytes(t)).unwrap();
    let dequantize = wtypes::spec(dtype).unwrap().dequantize_row;
    let mut values = vec![0f32; rows * cols];
    for (j, row) in values.chunks_exact_mut(cols).enumerate() {
        dequantize(view, j, 0, row);
    }
    let stem = std::env::temp_dir().join(format!("gg-dequant-{}-{}-{name}", std::process::id(), ty.name()));
    let (raw, ours) = (stem.with_extension("raw"), stem.with_extension("f32"));
    std::fs::write(&raw, g.tensor_bytes(t)).unwrap();
    std::fs::write(&ours, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let args = vec![
        format!("{} of {}", name, ty.name()),
        t.ty.to_string(),
        raw.to_str().unwrap().to_string(),
        ours.to_str().unwrap().to_string(),
    ];
    files.extend([raw, ours]);
    args
}

#[test]
fn every_type_dequantizes_as_the_gguf_package_does() {
    let required = std::env::var("GEMMA_GRAPH_PYTHON").ok();
    let python = required.clone().unwrap_or_else(|| "python3".into());
    // One tensor of each block type, from files whose manifests name them.
    let cases: [(OutType, &[&str]); 11] = [
        (OutType::BF16, &["blk.0.attn_k.weight"]),
        // Q4_K, Q6_K (attn_v of layer 0), Q5_0 (ffn_down's fallback), Q8_0 (ffn_down's fallback).
        (
            OutType::Q4KM,
            &[
                "blk.0.attn_k.weight",
                "blk.0.attn_v.weight",
                "blk.3.ffn_down.weight",
                "blk.0.ffn_down.weight",
            ],
        ),
        // Q5_K, Q5_1 (ffn_down's fallback).
        (OutType::Q5KM, &["blk.0.attn_k.weight", "blk.3.ffn_down.weight"]),
        (OutType::Q4_0, &["blk.0.attn_k.weight"]),
        (OutType::Q4_1, &["blk.0.attn_k.weight"]),
        (OutType::F16, &["blk.0.attn_k.weight"]),
        // IQ4_NL: a whole layer's matrices, then IQ4_XS and its IQ4_NL fallback (ffn_down).
        (
            OutType::IQ4NL,
            &["blk.5.attn_q.weight", "blk.5.ffn_gate.weight", "blk.5.ffn_down.weight"],
        ),
        (
            OutType::IQ4XS,
            &["blk.5.attn_q.weight", "blk.5.ffn_up.weight", "blk.5.ffn_down.weight"],
        ),
        // Q2_K, Q3_K (attn_v, attn_output) and Q4_0 (ffn_down's fallback): a whole layer.
        (
            OutType::Q2K,
            &[
                "blk.9.attn_q.weight",
                "blk.9.attn_k.weight",
                "blk.9.attn_v.weight",
                "blk.9.attn_output.weight",
                "blk.9.ffn_gate.weight",
                "blk.9.ffn_up.weight",
                "blk.9.ffn_down.weight",
            ],
        ),
        // Q3_K and Q5_K (attn_v of layer 1).
        (OutType::Q3KM, &["blk.1.attn_q.weight", "blk.1.attn_v.weight"]),
        // IQ3_S, and IQ4_NL (ffn_down's fallback).
        (
            OutType::IQ3S,
            &["blk.4.attn_q.weight", "blk.4.ffn_gate.weight", "blk.4.ffn_down.weight"],
        ),
    ];
    let mut files = Vec::new();
    let mut args = Vec::new();
    for (ty, names) in cases {
        for name in names {
            args.extend(case(ty, name, &mut files));
        }
    }
    let out = Command::new(&python).arg("-c").arg(SCRIPT).args(&args).output();
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    match out {
        Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Ok(o) if required.is_none() && String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            eprintln!("skipping: {python} has no gguf package");
        }
        Ok(o) => panic!("{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) if required.is_none() => eprintln!("skipping: {python}: {e}"),
        Err(e) => panic!("{python}: {e}"),
    }
}
