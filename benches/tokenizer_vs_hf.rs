//! Side by side, in one run: our tokenizer vs HF `tokenizers` (the Python package, on the
//! fetched checkpoint's tokenizer.json), both single-threaded, on the golden texts. Prints
//! MB/s for each and the ratio.
//!
//! Needs Python with `tokenizers`: `python3 -m venv ~/.cache/gemma-graph/venv &&
//! ~/.cache/gemma-graph/venv/bin/pip install tokenizers` (or set GEMMA_GRAPH_PYTHON).

use gg_testing::bench as support;

use std::process::Command;
use std::time::Instant;

use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{EncodeOptions, Tokenizer};

const HF_SCRIPT: &str = r#"
import json, os, sys, time
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.enable_truncation(2048)
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
n = sum(len(t.encode("utf-8")) for t in texts)
best = float("inf")
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    for t in texts:
        tok.encode(t)
    best = min(best, time.perf_counter() - t0)
print(n / best / 1e6)
"#;

fn main() {
    let rounds = 5;
    let golden = support::shared_dir().join("golden/tokens.jsonl");
    let texts = support::texts(&golden);
    let bytes: usize = texts.iter().map(String::len).sum();

    let g = Gguf::open(support::model_path()).unwrap();
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let load = t0.elapsed();
    let opts = EncodeOptions {
        max_tokens: Some(2048),
        ..Default::default()
    };
    let mut best = f64::INFINITY;
    let mut ids = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        for t in &texts {
            ids.clear();
            tok.encode_into(t, &opts, &mut ids);
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let ours = bytes as f64 / best / 1e6;
    println!(
        "texts: {} ({:.2} MB), best of {rounds} rounds",
        texts.len(),
        bytes as f64 / 1e6
    );
    println!(
        "gemma-graph tokenizer: {ours:8.2} MB/s   (vocabulary load {:.0} ms)",
        load.as_secs_f64() * 1e3
    );

    let python = std::env::var("GEMMA_GRAPH_PYTHON").unwrap_or_else(|_| {
        let venv = gemma_graph::cache_dir().join("venv/bin/python");
        if venv.is_file() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let tokenizer_json = gemma_graph::default_checkpoint_dir().join("tokenizer.json");
    let out = Command::new(&python)
        .arg("-c")
        .arg(HF_SCRIPT)
        .arg(&tokenizer_json)
        .arg(&golden)
        .arg(rounds.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let hf: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("MB/s from the HF script");
            println!("HF tokenizers (py):    {hf:8.2} MB/s");
            println!("ratio ours / HF:       {:8.2}x", ours / hf);
        }
        Ok(o) => println!(
            "HF tokenizers not measured ({python}): {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("HF tokenizers not measured: cannot run {python}: {e}"),
    }
}
