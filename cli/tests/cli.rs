//! The `gemma-graph` binary on the real model: run, tokenize, inspect, and bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gemma-graph"))
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/golden")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gemma-graph-cli-{}-{name}", std::process::id()))
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn embeddings(stdout: &str) -> Vec<Vec<f64>> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn run_jsonl_in_order() {
    let input = tmp("in.jsonl");
    let texts = ["first text", "a second, longer text about something else", "third"];
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let all = embeddings(&ok(bin()
        .args(["run", "--format", "jsonl", "--input"])
        .arg(&input)
        .output()
        .unwrap()));
    assert_eq!(all.len(), 3);
    for (i, t) in texts.iter().enumerate() {
        let one = embeddings(&ok(bin().args(["run", "--format", "jsonl", t]).output().unwrap()));
        assert_eq!(one[0], all[i], "text {i} differs alone and in the file");
        let norm: f64 = all[i].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(all[i].len(), 768);
    }
    let short = embeddings(&ok(bin()
        .args(["run", "--format", "jsonl", "--dim", "256", "x"])
        .output()
        .unwrap()));
    assert_eq!(short[0].len(), 256);
}

#[test]
fn tokenize_jsonl_matches_golden() {
    let golden_lines: Vec<String> = std::fs::read_to_string(golden("tokens.jsonl"))
        .unwrap()
        .lines()
        .take(300)
        .map(String::from)
        .collect();
    let input = tmp("tok.jsonl");
    std::fs::write(&input, golden_lines.join("\n")).unwrap();
    let out = ok(bin()
        .args(["tokenize", "--format", "jsonl", "--input"])
        .arg(&input)
        .output()
        .unwrap());
    let got: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), golden_lines.len());
    for (g, w) in got.iter().zip(&golden_lines) {
        let w: serde_json::Value = serde_json::from_str(w).unwrap();
        assert_eq!(g["ids"], w["ids"], "{}", w["id"]);
    }
    let text = ok(bin().args(["tokenize", "Hello world"]).output().unwrap());
    assert!(text.contains("\"▁world\"") && text.contains("4 tokens"), "{text}");
}

#[test]
fn inspect_json_describes_the_model() {
    let out = ok(bin().args(["inspect", "--json"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 316);
    assert_eq!(v["model"]["n_layers"], 24);
    assert_eq!(v["totals"]["Q8_0"]["tensors"], 171);
    let text = ok(bin().arg("inspect").output().unwrap());
    assert!(text.contains("global layers     [5, 11, 17, 23]"), "{text}");
}

#[test]
fn bad_input_is_named() {
    let input = tmp("bad.jsonl");
    std::fs::write(&input, "{\"text\": \"fine\"}\n{\"txt\": \"oops\"}\n").unwrap();
    let e = fails(bin().args(["run", "--input"]).arg(&input).output().unwrap());
    assert!(e.contains("line 2") && e.contains("\"text\""), "{e}");
    std::fs::write(&input, "{\"text\": \"fine\"}\nnot json\n").unwrap();
    let e = fails(bin().args(["tokenize", "--input"]).arg(&input).output().unwrap());
    assert!(e.contains("line 2") && e.contains("not valid JSON"), "{e}");

    let e = fails(
        bin()
            .args(["run", "--model", "/nonexistent/model.gguf", "x"])
            .output()
            .unwrap(),
    );
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");
    let truncated = tmp("truncated.gguf");
    let model = std::env::var("GEMMA_GRAPH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gemma-graph/embeddinggemma-300m-Q8_0.gguf")
        });
    let head = std::fs::read(&model).map(|b| b[..100_000].to_vec()).unwrap_or_default();
    std::fs::write(&truncated, head).unwrap();
    let e = fails(
        bin()
            .args(["run", "--model"])
            .arg(&truncated)
            .arg("x")
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("truncated.gguf") && e.contains("262144") && e.contains("cannot fit"),
        "{e}"
    );
    assert_eq!(e.matches("cannot fit").count(), 1, "cause repeated: {e}");
    let e = fails(bin().args(["run", "--dim", "100", "x"]).output().unwrap());
    assert!(e.contains("--dim 100"), "{e}");
    let e = fails(
        bin()
            .args(["convert", "/nonexistent", "-o"])
            .arg(tmp("x.gguf"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("/nonexistent"), "{e}");
    let e = fails(bin().args(["run", "--prompt", "nope", "x"]).output().unwrap());
    assert!(e.contains("unknown prompt"), "{e}");
}

#[test]
fn backend_choice_is_checked() {
    // An unknown backend in the environment is an error, not silently ignored.
    let e = fails(
        bin()
            .env("GEMMA_GRAPH_BACKEND", "bogus")
            .args(["run", "x"])
            .output()
            .unwrap(),
    );
    assert!(e.contains("bogus") && e.contains("scalar, avx2"), "{e}");
    // The planned dump names the backend and the kernels lowering chose.
    let out = ok(bin()
        .args(["dump", "--backend", "scalar", "--layers", "1"])
        .output()
        .unwrap());
    assert!(out.contains("lowered for the scalar backend"), "{out}");
    assert!(
        out.contains("scalar.matmul<q8_0>") && out.contains("scalar.attention"),
        "{out}"
    );
}

#[test]
fn convert_refuses_a_checkpoint_missing_a_listed_dense_module() {
    // Used to write a file whose head chain was broken (and whose `run` then failed).
    let ckpt = std::env::var("GEMMA_GRAPH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gemma-graph"))
        .join("embeddinggemma-300m");
    assert!(ckpt.is_dir(), "run scripts/fetch-model.sh first");
    let partial = tmp("no-2-dense");
    std::fs::create_dir_all(&partial).unwrap();
    for entry in std::fs::read_dir(&ckpt).unwrap() {
        let entry = entry.unwrap();
        let to = partial.join(entry.file_name());
        if entry.file_name() != "2_Dense" && !to.exists() {
            std::os::unix::fs::symlink(entry.path(), to).unwrap();
        }
    }
    let out_path = tmp("no-2-dense.gguf");
    let e = fails(
        bin()
            .arg("convert")
            .arg(&partial)
            .arg("-o")
            .arg(&out_path)
            .output()
            .unwrap(),
    );
    assert!(e.contains("2_Dense") && e.contains("missing"), "{e}");
    assert!(!out_path.exists());
    let mut tmp_name = out_path.into_os_string();
    tmp_name.push(".tmp");
    assert!(!PathBuf::from(tmp_name).exists(), "no partial file left behind");
}
