//! Fault injection: `run`, `inspect`, `dump` and `tokenize` over a generated corpus of bad
//! inputs — mutated GGUF metadata values, bit flips in the GGUF header, mutated saved graphs,
//! hostile text files. Every case must end with exit code 0, 1 or 2 (no panic, no abort, no
//! signal), within a time bound, under `ulimit -v`, and never print a NaN or a null vector.

use gg_testing::tiny;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gemma_graph::loader::gguf::{Gguf, MetaValue};
use gemma_graph::ops::testing::XorShift;
use tiny::{tiny_gguf, TinySpec};

/// Address space per case: far above what the tiny model needs, far below what an unbounded
/// allocation asks for.
const MEMORY_KB: u64 = 4 << 20;
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gemma-graph-fault-{}-{name}", std::process::id()))
}

/// Run the binary with `args` under the memory and time bounds; check how it ended.
fn check(case: &str, args: &[&str]) {
    let started = Instant::now();
    let script = format!(
        "ulimit -v {MEMORY_KB}; exec timeout -s KILL {} \"$0\" \"$@\"",
        TIME_LIMIT.as_secs()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_gemma-graph"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let what = format!("{case}: gemma-graph {}", args.join(" "));
    match out.status.code() {
        Some(0..=2) => {}
        other => panic!("{what}: ended with {other:?} (killed by a signal, the time limit or an abort)\n{stderr}"),
    }
    assert!(!stderr.contains("panicked"), "{what}: panicked\n{stderr}");
    // Vectors are never non-finite (`inspect` may show a file's NaN metadata as it is).
    if args[0] == "run" {
        assert!(
            !stdout.contains("NaN") && !stdout.contains("null") && !stdout.contains("inf"),
            "{what}: non-finite output\n{stdout}"
        );
    }
    assert!(started.elapsed() < TIME_LIMIT, "{what}: took {:?}", started.elapsed());
}

fn all_commands(case: &str, model: &Path, full: bool) {
    let m = model.to_str().unwrap();
    check(
        case,
        &["run", "--model", m, "--format", "jsonl", "hello world", "the end"],
    );
    check(case, &["inspect", "--model", m]);
    if full {
        check(case, &["tokenize", "--model", m, "hello <bos> world"]);
        check(case, &["dump", "--model", m, "--tokens", "64"]);
    }
}

/// Where an entry's value starts: after the key (u64 length + bytes) and the u32 type.
fn value_offset(key: &str, entry_offset: u64) -> usize {
    entry_offset as usize + 8 + key.len() + 4
}

#[test]
fn mutated_metadata_values() {
    let base = tiny_gguf(&TinySpec {
        layers: 2,
        ..Default::default()
    });
    let g = Gguf::from_bytes(&base).unwrap();
    let patterns: [[u8; 4]; 6] = [
        0u32.to_le_bytes(),
        1u32.to_le_bytes(),
        u32::MAX.to_le_bytes(),
        f32::NAN.to_le_bytes(),
        f32::NEG_INFINITY.to_le_bytes(),
        (-1.0f32).to_le_bytes(),
    ];
    let mut n = 0;
    for e in g.metadata() {
        let width = match e.value {
            MetaValue::U32(_) | MetaValue::I32(_) | MetaValue::F32(_) => 4,
            MetaValue::Array(_) => 4, // the element type code
            _ => continue,
        };
        let at = value_offset(&e.key, e.offset);
        for (p, pattern) in patterns.iter().enumerate() {
            let mut bytes = base.clone();
            bytes[at..at + width].copy_from_slice(&pattern[..width]);
            let path = tmp(&format!("meta-{n}.gguf"));
            std::fs::write(&path, &bytes).unwrap();
            all_commands(&format!("{} = pattern {p}", e.key), &path, n % 3 == 0);
            std::fs::remove_file(&path).ok();
            n += 1;
        }
    }
    assert!(n > 100, "{n} cases");
}

#[test]
fn bit_flips_in_the_header() {
    let base = tiny_gguf(&TinySpec {
        layers: 1,
        ..Default::default()
    });
    let header = Gguf::from_bytes(&base).unwrap().data_start() as usize;
    let mut rng = XorShift(77);
    for i in 0..120 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(header);
            bytes[at] ^= 1 << rng.below(8);
        }
        let path = tmp(&format!("flip-{i}.gguf"));
        std::fs::write(&path, &bytes).unwrap();
        all_commands(&format!("flip {i}"), &path, i % 4 == 0);
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn mutated_saved_graphs() {
    let model = tmp("graph-model.gguf");
    std::fs::write(&model, tiny_gguf(&TinySpec::default())).unwrap();
    let m = model.to_str().unwrap();
    let ron = tmp("graph.ron");
    let out = Command::new(env!("CARGO_BIN_EXE_gemma-graph"))
        .args(["dump", "--model", m, "--format", "ron", "--tokens", "64", "-o"])
        .arg(&ron)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&ron).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut rng = XorShift(99);
    let replacements = [
        "0",
        "1",
        "999999999",
        "-1",
        "1e30",
        "NaN",
        "18446744073709551615",
        "Tokens",
    ];
    for i in 0..80 {
        let mutated = match i % 3 {
            // A number somewhere replaced.
            0 => {
                let digits: Vec<usize> = text
                    .char_indices()
                    .filter(|(j, c)| c.is_ascii_digit() && !text[..*j].ends_with(|p: char| p.is_ascii_digit()))
                    .map(|(j, _)| j)
                    .collect();
                let at = digits[rng.below(digits.len())];
                let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
                format!(
                    "{}{}{}",
                    &text[..at],
                    replacements[rng.below(replacements.len())],
                    &text[end..]
                )
            }
            // A line dropped.
            1 => {
                let drop = rng.below(lines.len());
                lines
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != drop)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            // Two lines swapped.
            _ => {
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                let mut l = lines.clone();
                l.swap(a, b);
                l.join("\n")
            }
        };
        let path = tmp(&format!("graph-{i}.ron"));
        std::fs::write(&path, mutated).unwrap();
        check(
            &format!("graph mutation {i}"),
            &[
                "run",
                "--model",
                m,
                "--format",
                "jsonl",
                "--graph",
                path.to_str().unwrap(),
                "hello world",
            ],
        );
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn hostile_text_files() {
    let model = tmp("text-model.gguf");
    std::fs::write(&model, tiny_gguf(&TinySpec::default())).unwrap();
    let m = model.to_str().unwrap();
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nul bytes", b"{\"text\": \"a\\u0000b\"}\n".to_vec()),
        ("raw nul line", b"\0\0\0\n".to_vec()),
        (
            "2 MB text",
            format!("{{\"text\": \"{}\"}}\n", "ab ".repeat(700_000)).into_bytes(),
        ),
        ("deep nesting", nested.into_bytes()),
        ("many lines", "{\"text\": \"x\"}\n".repeat(3000).into_bytes()),
        (
            "control literals",
            format!("{{\"text\": \"{}\"}}\n", "<bos><eos><pad>".repeat(500)).into_bytes(),
        ),
        ("lone surrogate", b"{\"text\": \"\\ud800\"}\n".to_vec()),
        ("number as text", b"{\"text\": 5}\n".to_vec()),
        ("object as text", b"{\"text\": {\"a\": 1}}\n".to_vec()),
        ("no newline at end", b"{\"text\": \"a\"}".to_vec()),
        ("only a BOM", b"\xEF\xBB\xBF".to_vec()),
        ("invalid utf-8", b"{\"text\": \"\xC3\x28\"}\n".to_vec()),
        ("empty text", b"{\"text\": \"\"}\n".to_vec()),
        (
            "mixed scripts",
            "{\"text\": \"\u{202e}مرحبا 👩‍👩‍👧 ﷽ \u{0301}\u{0301}\"}\n"
                .as_bytes()
                .to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = tmp(&format!("text-{}.jsonl", name.replace(' ', "-")));
        std::fs::write(&path, bytes).unwrap();
        let p = path.to_str().unwrap();
        check(name, &["run", "--model", m, "--format", "jsonl", "--input", p]);
        check(name, &["tokenize", "--model", m, "--format", "jsonl", "--input", p]);
        std::fs::remove_file(&path).ok();
    }
}
