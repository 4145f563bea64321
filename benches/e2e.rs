//! End-to-end latency and throughput on the real model and the benchmark workloads
//! (../shared/bench). Prints a table; pick workloads by name:
//!
//!     cargo bench --bench e2e -- [short] [512] [queries] [docs] [long] [--backend scalar] [--threads N] [--profile]
//!
//! Default: `short 512`. Times are wall-clock medians on this machine; compare ratios measured
//! side by side, not absolute numbers (the machines are shared).

use gg_testing::bench as support;

use std::time::{Duration, Instant};

use gemma_graph::{Backend, BackendChoice, EmbedOptions, Model, ModelOptions, SentenceTransformersHead};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A prefix of `text` that tokenizes to exactly `n` tokens (BOS/EOS included), if any.
fn text_with_tokens(model: &Model, text: &str, n: usize) -> String {
    let count = |s: &str| model.tokenizer().encode(s, &Default::default()).ids.len();
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(&chars[..mid].iter().collect::<String>()) <= n {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut workloads: Vec<&str> = Vec::new();
    let mut options = ModelOptions::default();
    let mut profile = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--backend" => {
                i += 1;
                let b = Backend::all()
                    .iter()
                    .find(|b| b.name() == args[i])
                    .expect("backend name");
                options.backend = BackendChoice::Force(*b);
            }
            "--threads" => {
                i += 1;
                options.threads = args[i].parse().expect("thread count");
            }
            "--profile" => profile = true,
            w => workloads.push(w),
        }
        i += 1;
    }
    if workloads.is_empty() {
        workloads = vec!["short", "512"];
    }
    let model = Model::load_with(support::model_path(), &options, &SentenceTransformersHead).unwrap();
    println!("backend {}, {} threads", model.backend(), model.threads());
    let bench = support::shared_dir().join("bench");
    let opts = EmbedOptions {
        profile: profile.then(|| model.new_profile()),
        ..Default::default()
    };
    let one_by_one = |texts: &[String], reps: usize| -> (Duration, usize) {
        let mut times = Vec::new();
        let mut tokens = 0;
        for _ in 0..reps {
            for t in texts {
                let t0 = Instant::now();
                let out = model.embed(&[t], &opts).unwrap();
                times.push(t0.elapsed());
                tokens = out.items[0].tokens;
            }
        }
        (median(times), tokens)
    };
    for w in workloads {
        match w {
            "short" => {
                let q = support::texts(&bench.join("queries.jsonl"));
                let (t, n) = one_by_one(&q[..1], 7);
                println!(
                    "short text ({n} tokens):        median {:8.1} ms",
                    t.as_secs_f64() * 1e3
                );
            }
            "512" => {
                let long = support::texts(&bench.join("long.jsonl"));
                let text = text_with_tokens(&model, &long[0], 512);
                let (t, n) = one_by_one(&[text], 3);
                println!("long text ({n} tokens):        median {:8.1} ms", t.as_secs_f64() * 1e3);
            }
            "queries" => {
                let q = support::texts(&bench.join("queries.jsonl"));
                let (t, _) = one_by_one(&q, 1);
                println!(
                    "queries.jsonl (64, one per pass): p50 {:8.1} ms per query",
                    t.as_secs_f64() * 1e3
                );
            }
            "long" => {
                let l = support::texts(&bench.join("long.jsonl"));
                let (t, _) = one_by_one(&l, 1);
                println!(
                    "long.jsonl (4, one per pass):  p50 {:8.1} ms per document",
                    t.as_secs_f64() * 1e3
                );
            }
            "docs" => {
                let d = support::texts(&bench.join("docs.jsonl"));
                let t0 = Instant::now();
                let out = model.embed(&d, &opts).unwrap();
                let secs = t0.elapsed().as_secs_f64();
                let tokens: usize = out.items.iter().map(|i| i.tokens).sum();
                println!(
                    "docs.jsonl ({} texts, {tokens} tokens): {:.2} texts/s, {:.0} tokens/s",
                    d.len(),
                    d.len() as f64 / secs,
                    tokens as f64 / secs
                );
            }
            other => panic!("unknown workload {other:?} (short, 512, queries, docs, long)"),
        }
    }
    if let Some(p) = &opts.profile {
        print!("{}", model.profile_report(p));
    }
}
