//! Output dtypes against sentence-transformers itself (../shared/golden/st_api/calls.jsonl):
//! `quantize_embeddings` on the exact float32 vectors it was given — int8, uint8 (ranges from
//! the vectors themselves and from separate calibration embeddings), binary, ubinary — matched
//! byte for byte by `gemma_graph::quantize_row`.

use gg_testing as common;

use common::*;
use gemma_graph::{quantize_row, OutputDtype, Ranges};
use serde_json::Value as Json;

struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

fn matrix(call: &Json) -> Matrix {
    let out = &call["output"];
    let shape: Vec<usize> = out["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let values: Vec<f32> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(shape.len(), 2);
    assert_eq!(values.len(), shape[0] * shape[1]);
    Matrix {
        rows: shape[0],
        cols: shape[1],
        values,
    }
}

fn quantize_calls() -> Vec<Json> {
    read_jsonl(&golden_file("st_api/calls.jsonl"))
        .into_iter()
        .filter(|c| c["call"] == "quantize_embeddings")
        .collect()
}

fn input(calls: &[Json], name: &str) -> Matrix {
    let call = calls
        .iter()
        .find(|c| c["kwargs"]["precision"] == name)
        .unwrap_or_else(|| panic!("no {name} in st_api/calls.jsonl"));
    matrix(call)
}

#[test]
fn quantize_embeddings_matches_sentence_transformers_byte_for_byte() {
    let calls = quantize_calls();
    let x = input(&calls, "float32-input");
    let calibration = input(&calls, "calibration-input");
    let mut checked = 0;
    for call in &calls {
        let kwargs = &call["kwargs"];
        if kwargs.get("of").is_none() {
            continue;
        }
        let dtype: OutputDtype = kwargs["precision"].as_str().unwrap().parse().unwrap();
        let ranges = match kwargs.get("calibration_embeddings") {
            Some(_) => Some(Ranges::from_calibration(&calibration.values, calibration.cols).unwrap()),
            // Without calibration, sentence-transformers takes the ranges of the input itself.
            None => dtype
                .needs_ranges()
                .then(|| Ranges::from_calibration(&x.values, x.cols).unwrap()),
        };
        let want = &call["output"];
        assert_eq!(want["shape"][1].as_u64().unwrap() as usize, dtype.row_len(x.cols));
        let want: Vec<i64> = want["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let mut got = Vec::new();
        for row in x.values.chunks_exact(x.cols) {
            quantize_row(row, dtype, ranges.as_ref(), &mut got).unwrap();
        }
        let got: Vec<i64> = got
            .iter()
            .map(|&b| if dtype.signed_bytes() { b as i8 as i64 } else { b as i64 })
            .collect();
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(got.len(), want.len(), "{dtype}: {kwargs}");
        assert_eq!(differ, 0, "{dtype} ({kwargs}): {differ} of {} bytes differ", want.len());
        checked += 1;
    }
    // int8, uint8, binary, ubinary; int8 and uint8 again with calibration embeddings.
    assert_eq!(
        checked, 6,
        "st_api/calls.jsonl has fewer quantize_embeddings calls than expected"
    );
    assert!(x.rows == 6 && calibration.rows == 8);
}
