//! A classifier head end to end: `examples/classifier/train.py` trains scikit-learn's
//! LogisticRegression on our embeddings of Debian's AppStream descriptions (labels: each
//! app's main category), saves it as safetensors, and `gemma-graph run --head` must give
//! scikit-learn's `predict_proba` on the held-out texts (max abs diff ≤ 1e-5). Needs the
//! tools venv `scripts/check.sh` makes (numpy, scikit-learn, pyyaml, safetensors) and the
//! AppStream lists `apt-get update` fetches.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<String> {
    if let Ok(p) = std::env::var("GEMMA_GRAPH_PYTHON") {
        return Some(p);
    }
    let ok = Command::new("python3")
        .args(["-c", "import numpy, sklearn, yaml, safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| "python3".into())
}

#[test]
fn trained_classifier_head_matches_scikit_learn() {
    let Some(python) = python() else {
        eprintln!(
            "skipping: no python with numpy, scikit-learn, pyyaml and safetensors (scripts/check.sh provides one)"
        );
        return;
    };
    let bin = env!("CARGO_BIN_EXE_gemma-graph");
    let dir: PathBuf = std::env::temp_dir().join(format!("gemma-graph-classifier-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/classifier/train.py");
    let out = Command::new(&python)
        .args([script, "--gemma-graph", bin, "--max-per-class", "80", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "train.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    let baseline = report["majority_baseline"].as_f64().unwrap();
    println!("AppStream main category: {summary}");
    // Chance on ~10 classes is ~0.1; a head on good embeddings does far better.
    assert!(
        accuracy > 0.5 && accuracy > 3.0 * baseline,
        "accuracy {accuracy} (majority {baseline})"
    );

    // Our head on the held-out texts against scikit-learn's predict_proba.
    let head = dir.join("classifier.safetensors");
    let run = Command::new(bin)
        .args([
            "run",
            "--prompt",
            "Classification",
            "--format",
            "jsonl",
            "--quiet",
            "--head",
        ])
        .arg(&head)
        .arg("--input")
        .arg(dir.join("test.jsonl"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got: Vec<serde_json::Value> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), expected.len());
    let labels: Vec<String> = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let (mut max_diff, mut correct) = (0f64, 0);
    for (g, e) in got.iter().zip(&expected) {
        let probs = g["probabilities"].as_object().unwrap();
        let names: Vec<&String> = probs.keys().collect();
        assert_eq!(
            names,
            labels.iter().collect::<Vec<_>>(),
            "labels from the file's metadata, in class order"
        );
        for (p, q) in probs.values().zip(e["predict_proba"].as_array().unwrap()) {
            max_diff = max_diff.max((p.as_f64().unwrap() - q.as_f64().unwrap()).abs());
        }
        correct += usize::from(g["label"] == e["label"]);
    }
    let ours = correct as f64 / got.len() as f64;
    println!(
        "max |ours - predict_proba| {max_diff:.2e} over {} texts; accuracy {ours:.3}",
        got.len()
    );
    assert!(max_diff <= 1e-5, "max abs diff {max_diff}");
    assert!(
        (ours - accuracy).abs() < 0.01,
        "our labels give accuracy {ours}, scikit-learn's {accuracy}"
    );

    // The Rust example on the same file.
    let example = Path::new(bin)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("classifier");
    if example.exists() {
        let out = Command::new(example)
            .arg(&head)
            .arg("A fast-paced space shooter with forty levels")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("Game "), "{line}");
    } else {
        eprintln!("the classifier example is not built (cargo test --workspace builds it)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
