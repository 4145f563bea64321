//! The runnable blocks of the README and of `docs/` (a ```sh block right after the line
//! `<!-- runs in cli/tests/readme.rs -->`), run line by line in a shell on the real model, in a
//! directory holding the small files they name.

use std::path::{Path, PathBuf};
use std::process::Command;

const MARK: &str = "<!-- runs in cli/tests/readme.rs -->";

/// The lines of every marked block of `text` (the mark alone on its line, the ```sh block
/// right after it), without comments.
fn runnable_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARK {
            continue;
        }
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "a ```sh block right after the mark"
        );
        for l in lines.by_ref().map(str::trim).take_while(|l| *l != "```") {
            if !l.is_empty() && !l.starts_with('#') {
                out.push(l.to_string());
            }
        }
    }
    out
}

/// The README's marked lines, then every docs page's.
fn documented_lines() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut lines = runnable_lines(&std::fs::read_to_string(root.join("README.md")).unwrap());
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for p in docs {
        lines.extend(runnable_lines(&std::fs::read_to_string(p).unwrap()));
    }
    lines
}

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let jsonl = |texts: &[&str]| -> String {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"id": i, "text": t}).to_string() + "\n")
            .collect()
    };
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write(
        "texts.jsonl",
        jsonl(&[
            "How do I bake bread?",
            "The Eiffel Tower is in Paris.",
            "Plants make sugar from light.",
        ]),
    );
    write(
        "docs.csv",
        "id,body\n1,\"Bread, water and salt\"\n2,\"A poem\nover two lines\"\n".into(),
    );
    write("notes.txt", "first note\nsecond note\n".into());
    write(
        "corpus.jsonl",
        jsonl(&[
            "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
            "Sourdough bread rises with wild yeast and lactic acid bacteria.",
            "Photosynthesis converts light, water and carbon dioxide into sugar.",
            "A binary search halves the interval at every step.",
        ]),
    );
    let long = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench/long.jsonl")).unwrap();
    write("long.jsonl", long.lines().next().unwrap().to_string() + "\n");
}

#[test]
fn documented_commands_run_as_written() {
    let dir: PathBuf = std::env::temp_dir().join(format!("gemma-graph-readme-{}", std::process::id()));
    setup(&dir);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_gemma-graph")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let python = std::env::var("GEMMA_GRAPH_PYTHON").ok();
    let lines = documented_lines();
    assert!(lines.len() >= 20, "{lines:?}");
    let mut outputs = Vec::new();
    for line in &lines {
        let mut cmd_line = line.clone();
        if let Some(rest) = line.strip_prefix("python3 ") {
            match &python {
                Some(p) => cmd_line = format!("{p} {rest}"),
                None => {
                    let has_numpy = Command::new("python3")
                        .args(["-c", "import numpy"])
                        .status()
                        .is_ok_and(|s| s.success());
                    if !has_numpy {
                        eprintln!("skipping (no numpy; scripts/check.sh provides it): {line}");
                        continue;
                    }
                }
            }
        }
        let out = Command::new("sh")
            .args(["-c", &format!("set -e; {cmd_line}")])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "`{line}` failed: {stderr}");
        assert!(!stderr.contains("panicked"), "`{line}`: {stderr}");
        outputs.push((line.clone(), String::from_utf8_lossy(&out.stdout).to_string(), stderr));
    }
    let find = |needle: &str| outputs.iter().find(|(l, ..)| l.contains(needle)).unwrap();
    // What the lines promise.
    if python.is_some() {
        assert!(find("numpy.load").1.contains("(3, 768)"));
    }
    assert!(std::fs::read_to_string(dir.join("vectors.csv"))
        .unwrap()
        .starts_with("index,tokens,truncated,id,e0,"));
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(find("--stats").2.contains("stats: 4 texts"));
    let saved = &find("--embeddings corpus.npy").1;
    assert!(saved.lines().nth(1).unwrap().contains("Photosynthesis"), "{saved}");
    let fresh = &find("which tower").1;
    assert!(fresh.lines().nth(1).unwrap().contains("Eiffel"), "{fresh}");
    assert!(find("similarity").1.contains("[1] \"A kitten rests on the rug\""));
    let chunks = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    assert!(chunks.lines().count() > 10, "a ~2,000-token text in 112-token steps");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["texts"], 3);
    assert!(find("tokenize --prompt query").1.contains("query"));
    // docs/cli.md's blocks.
    assert_eq!(find("tokenize --input texts.jsonl").1.lines().count(), 3);
    assert!(find("--normalize nfc").1.contains("<bos>"));
    assert!(std::fs::read_to_string(dir.join("graph.dot"))
        .unwrap()
        .starts_with("digraph"));
    assert!(std::fs::read_to_string(dir.join("plan.svg")).unwrap().contains("<svg"));
    assert!(find("--graph model.ron").1.contains("768 dims"));
    let _ = std::fs::remove_dir_all(&dir);
}
