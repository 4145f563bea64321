//! `gemma-graph run` as a tool on files: every input format gives the same vectors, every
//! output format round-trips to the same numbers, batching never reorders or changes rows,
//! prompts, chunks, bad lines, statistics and bounded memory. Uses the tiny random model
//! (seconds); the real model's cases are in `cli.rs`.

use gg_testing::tiny;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tiny::{tiny_model_file, TinySpec};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gemma-graph"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gemma-graph-io-{}-{name}", std::process::id()))
}

fn model() -> PathBuf {
    static MODEL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| tiny_model_file("run-io", &TinySpec::default()))
        .clone()
}

fn run(args: &[&str]) -> Output {
    bin()
        .arg("run")
        .args(args)
        .arg("--model")
        .arg(model())
        .output()
        .unwrap()
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .arg("run")
        .args(args)
        .arg("--model")
        .arg(model())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ok(out: Output) -> Vec<u8> {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out.stdout
}

fn fails_with(out: Output, code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} does not mention {n:?}");
    }
    err
}

/// Write a test file atomically (a unique temporary name, then a rename): tests run in
/// parallel and several write the same input file, which another may be reading.
fn write(name: &str, bytes: &[u8]) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = tmp(name);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let part = tmp(&format!("{name}.part{n}"));
    std::fs::write(&part, bytes).unwrap();
    std::fs::rename(&part, &p).unwrap();
    p
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Texts with what trips up each format: commas, quotes, tabs, an embedded newline (CSV only
/// quotes it), non-ASCII, an empty text.
const TEXTS: [&str; 6] = [
    "the world",
    "rain, on the \"other\" three",
    "tab\there",
    "",
    "café ünïcode — wörld",
    "an other win the tea",
];

fn jsonl_rows(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn vectors_of_rows(rows: &[Value]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| {
            r["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn table_vectors(stdout: &[u8], delimiter: u8) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(stdout);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn npy_vectors(bytes: &[u8]) -> Vec<Vec<f32>> {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    assert_eq!((10 + hlen) % 64, 0, "npy data starts 64-byte aligned");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let dims: Vec<usize> = shape.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let values: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values.len(), dims[0] * dims[1]);
    values.chunks(dims[1]).map(<[f32]>::to_vec).collect()
}

fn texts_jsonl() -> PathBuf {
    let lines: Vec<String> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("doc-{i}"), "text": t, "n": i}).to_string())
        .collect();
    write("texts.jsonl", (lines.join("\n") + "\n").as_bytes())
}

#[test]
fn every_output_format_round_trips_to_the_same_numbers() {
    let input = texts_jsonl();
    let jsonl = jsonl_rows(&ok(run(&["--input", arg(&input), "--format", "jsonl"])));
    let reference = vectors_of_rows(&jsonl);
    assert_eq!(reference.len(), TEXTS.len());
    for (i, row) in jsonl.iter().enumerate() {
        assert_eq!(row["index"], i);
        assert_eq!(row["id"], format!("doc-{i}"), "other fields are copied");
        assert_eq!(row["n"], i);
        assert_eq!(row["truncated"], false);
        assert!(row["tokens"].as_u64().unwrap() >= 2);
    }
    // The empty text is embedded (BOS + EOS), not dropped.
    assert_eq!(jsonl[3]["tokens"], 2);

    let json: Value = serde_json::from_slice(&ok(run(&["--input", arg(&input), "--format", "json"]))).unwrap();
    assert_eq!(vectors_of_rows(json.as_array().unwrap()), reference);

    for (format, delimiter) in [("csv", b','), ("tsv", b'\t')] {
        let (header, rows) = table_vectors(&ok(run(&["--input", arg(&input), "--format", format])), delimiter);
        assert_eq!(&header[..5], ["index", "tokens", "truncated", "id", "n"]);
        let dim = reference[0].len();
        assert_eq!(header.len(), 5 + dim);
        for (row, want) in rows.iter().zip(&reference) {
            let got: Vec<f32> = row[5..].iter().map(|x| x.parse().unwrap()).collect();
            assert_eq!(&got, want, "{format} numbers read back bit for bit");
        }
    }

    // npy to a file (header patched at the end), to stdout redirected to a file, to a pipe.
    let file = tmp("out.npy");
    ok(run(&["--input", arg(&input), "--output", arg(&file)]));
    assert_eq!(npy_vectors(&std::fs::read(&file).unwrap()), reference);
    let redirected = tmp("redirected.npy");
    let status = bin()
        .args([
            "run",
            "--format",
            "npy",
            "--input",
            arg(&input),
            "--model",
            arg(&model()),
        ])
        .stdout(std::fs::File::create(&redirected).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&redirected).unwrap(), std::fs::read(&file).unwrap());
    let piped = ok(run(&["--input", arg(&input), "--format", "npy"]));
    assert_eq!(piped, std::fs::read(&file).unwrap());
    numpy_reads(&file, reference.len(), reference[0].len());
}

/// numpy itself loads the file (`scripts/check.sh` makes a venv with numpy and points
/// `GEMMA_GRAPH_PYTHON` at it; elsewhere the check is skipped when numpy is missing).
fn numpy_reads(path: &Path, rows: usize, dim: usize) {
    let required = std::env::var("GEMMA_GRAPH_PYTHON").ok();
    let python = required.clone().unwrap_or_else(|| "python3".into());
    let script = format!(
        "import numpy as np; a = np.load({:?}); assert a.dtype == np.float32 and a.shape == ({rows}, {dim}), (a.dtype, a.shape); \
         import sys; n = np.linalg.norm(a, axis=1); assert abs(n - 1).max() < 1e-5, n",
        path.to_str().unwrap()
    );
    match Command::new(&python).args(["-c", &script]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) if required.is_none() && String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            eprintln!("skipping the numpy check: {python} has no numpy");
        }
        Ok(o) => panic!("numpy could not load the npy: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) if required.is_none() => eprintln!("skipping the numpy check: {e}"),
        Err(e) => panic!("{python}: {e}"),
    }
}

#[test]
fn every_input_format_gives_the_same_vectors() {
    let reference = vectors_of_rows(&jsonl_rows(&ok(run(&[
        "--input",
        arg(&texts_jsonl()),
        "--format",
        "jsonl",
    ]))));

    // Positional arguments.
    let mut args = vec!["--format", "jsonl"];
    args.extend(TEXTS);
    assert_eq!(vectors_of_rows(&jsonl_rows(&ok(run(&args)))), reference);

    // CSV with quoting and an embedded newline; TSV; with a BOM and CRLF line ends.
    let mut csv = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut tsv = csv::WriterBuilder::new().delimiter(b'\t').from_writer(Vec::new());
    for w in [&mut csv, &mut tsv] {
        w.write_record(["id", "body"]).unwrap();
        for (i, t) in TEXTS.iter().enumerate() {
            w.write_record([format!("doc-{i}").as_str(), t]).unwrap();
        }
    }
    let mut csv_bytes = "\u{feff}".as_bytes().to_vec();
    csv_bytes.extend(
        String::from_utf8(csv.into_inner().unwrap())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    let csv_file = write("texts.csv", &csv_bytes);
    let tsv_file = write("texts.tsv", &tsv.into_inner().unwrap());
    for file in [&csv_file, &tsv_file] {
        let rows = jsonl_rows(&ok(run(&[
            "--input",
            arg(file),
            "--text-field",
            "body",
            "--format",
            "jsonl",
        ])));
        assert_eq!(vectors_of_rows(&rows), reference, "{}", file.display());
        assert_eq!(rows[1]["id"], "doc-1");
    }
    // A CSV on stdin needs --input-format.
    let rows = jsonl_rows(&ok(run_stdin(
        &[
            "--input",
            "-",
            "--input-format",
            "csv",
            "--text-field",
            "body",
            "--format",
            "jsonl",
        ],
        &csv_bytes,
    )));
    assert_eq!(vectors_of_rows(&rows), reference);

    // Plain lines, CRLF ends.
    let plain: Vec<&str> = TEXTS.to_vec();
    let lines_file = write("texts.txt", (plain.join("\r\n") + "\r\n").as_bytes());
    assert_eq!(
        vectors_of_rows(&jsonl_rows(&ok(run(&[
            "--input",
            arg(&lines_file),
            "--format",
            "jsonl"
        ])))),
        reference
    );
    // stdin, sniffed: lines, then JSONL.
    assert_eq!(
        vectors_of_rows(&jsonl_rows(&ok(run_stdin(
            &["--input", "-", "--format", "jsonl"],
            plain.join("\n").as_bytes()
        )))),
        reference
    );
    assert_eq!(
        vectors_of_rows(&jsonl_rows(&ok(run_stdin(
            &["--input", "-", "--format", "jsonl"],
            &std::fs::read(texts_jsonl()).unwrap()
        )))),
        reference
    );
}

#[test]
fn output_order_and_values_do_not_depend_on_batching() {
    let texts: Vec<String> = (0..300)
        .map(|i| {
            let words = ["the", "world", "rain", "on", "an", "other", "three", "win", "tea"];
            (0..(i * 7 % 23))
                .map(|k| words[(i + k) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let input = write("many.txt", (texts.join("\n") + "\n").as_bytes());
    let reference = vectors_of_rows(&jsonl_rows(&ok(run(&["--input", arg(&input), "--format", "jsonl"]))));
    assert_eq!(reference.len(), texts.len());
    for extra in [
        &["--batch-texts", "1"][..],
        &["--batch-texts", "7", "--threads", "1"],
        &["--batch-tokens", "40"],
        &["--batch-tokens", "3000"],
    ] {
        let mut args = vec!["--input", arg(&input), "--format", "jsonl"];
        args.extend(extra);
        let rows = jsonl_rows(&ok(run(&args)));
        for (i, (row, want)) in rows.iter().zip(&reference).enumerate() {
            assert_eq!(row["index"], i, "{extra:?}");
            let got = vectors_of_rows(std::slice::from_ref(row)).remove(0);
            let diff = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-6, "{extra:?}: row {i} differs by {diff}");
        }
        assert_eq!(rows.len(), reference.len());
    }
}

#[test]
fn prompts_are_exactly_prepended_text() {
    let with_prompt = ok(run(&["--prompt-text", "search: ", "--format", "jsonl", "the world"]));
    let prepended = ok(run(&["--format", "jsonl", "search: the world"]));
    assert_eq!(
        vectors_of_rows(&jsonl_rows(&with_prompt)),
        vectors_of_rows(&jsonl_rows(&prepended))
    );
    let named = ok(run(&["--prompt", "query", "--format", "jsonl", "the world"]));
    let by_hand = ok(run(&["--format", "jsonl", "task: search result | query: the world"]));
    assert_eq!(
        vectors_of_rows(&jsonl_rows(&named)),
        vectors_of_rows(&jsonl_rows(&by_hand))
    );
    fails_with(
        run(&["--prompt", "nope", "x"]),
        1,
        &["unknown prompt \"nope\"", "query"],
    );
}

#[test]
fn chunks_are_windows_of_the_text_with_offsets() {
    let words = [
        "the", "world", "rain", "on", "an", "other", "three", "win", "tea", "café",
    ];
    let text: String = (0..90)
        .map(|i| words[i * 7 % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let rows = jsonl_rows(&ok(run(&[
        "--chunk-tokens",
        "40",
        "--chunk-overlap",
        "10",
        "--prompt-text",
        "p: ",
        "--format",
        "jsonl",
        &text,
    ])));
    assert!(rows.len() >= 3, "{} chunks", rows.len());
    let chars: Vec<char> = text.chars().collect();
    let mut last_end = 0;
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["index"], 0);
        assert_eq!(row["chunk"], k);
        let (s, e) = (
            row["start"].as_u64().unwrap() as usize,
            row["end"].as_u64().unwrap() as usize,
        );
        assert!(s < e && e <= chars.len());
        if k > 0 {
            assert!(s < last_end, "consecutive chunks overlap");
        }
        last_end = e;
        // A chunk's vector is exactly the vector of its text.
        let piece: String = chars[s..e].iter().collect();
        let alone = jsonl_rows(&ok(run(&["--prompt-text", "p: ", "--format", "jsonl", &piece])));
        assert_eq!(
            vectors_of_rows(std::slice::from_ref(row)),
            vectors_of_rows(&alone),
            "chunk {k}"
        );
        assert!(row["tokens"].as_u64().unwrap() <= 40 + 2 + 3, "{row}");
    }
    assert_eq!(rows[0]["start"], 0);
    assert_eq!(last_end, chars.len(), "the last chunk reaches the end");
    fails_with(
        run(&["--chunk-tokens", "10", "--chunk-overlap", "10", "x"]),
        1,
        &["--chunk-overlap"],
    );
    fails_with(
        run(&["--chunk-tokens", "500", "x"]),
        1,
        &["do not fit the 128-token context"],
    );
}

#[test]
fn bad_lines_name_the_file_and_line_or_become_empty_rows() {
    let jsonl = write(
        "bad.jsonl",
        b"{\"text\": \"the world\"}\n{\"text\": 5}\nnot json\n{\"body\": \"x\"}\n\n{\"text\": \"ok\"}\n\xff\xfe\n",
    );
    fails_with(
        run(&["--input", arg(&jsonl), "--format", "jsonl"]),
        1,
        &["bad.jsonl line 2", "field \"text\" is a number, not a string"],
    );
    let out = run(&["--input", arg(&jsonl), "--format", "jsonl", "--skip-invalid"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let rows = jsonl_rows(&ok(out));
    assert_eq!(rows.len(), 7, "one row per input line");
    let nulls: Vec<usize> = (0..7).filter(|&i| rows[i]["embedding"].is_null()).collect();
    assert_eq!(nulls, [1, 2, 3, 4, 6]);
    assert!(rows[2]["error"].as_str().unwrap().contains("not valid JSON"));
    assert!(rows[3]["error"].as_str().unwrap().contains("no field \"text\""));
    assert!(rows[6]["error"].as_str().unwrap().contains("not valid UTF-8"));
    assert!(err.contains("note: 5 input lines were invalid"), "{err}");

    for (bytes, needle) in [
        (&b"not json\n"[..], "line 1: not valid JSON"),
        (b"{\"a\": 1}\n{\"text\": [1]}\n", "line 1: no field \"text\""),
        (b"{\"text\": \"a\"}\n\n", "line 2: empty line"),
        (b"[\"text\"]\n", "line 1: expected an object"),
    ] {
        let f = write("case.jsonl", bytes);
        fails_with(run(&["--input", arg(&f)]), 1, &[needle]);
    }
    let lines = write("bad.txt", b"fine\n\xc3\x28 broken\n");
    fails_with(
        run(&["--input", arg(&lines)]),
        1,
        &["bad.txt line 2: not valid UTF-8 (at byte 0"],
    );

    let csv = write("bad.csv", b"id,text\n1,fine\n2,\"two\nlines\"\n3,too,many\n4,ok\n");
    fails_with(
        run(&["--input", arg(&csv)]),
        1,
        &["bad.csv line 5: 3 columns where the header has 2"],
    );
    let rows = jsonl_rows(&ok(run(&["--input", arg(&csv), "--format", "jsonl", "--skip-invalid"])));
    assert_eq!(rows.len(), 4);
    assert!(rows[2]["embedding"].is_null() && !rows[3]["embedding"].is_null());
    let no_column = write("nocol.csv", b"id,body\n1,x\n");
    fails_with(
        run(&["--input", arg(&no_column)]),
        1,
        &["nocol.csv line 1: no column \"text\"", "id, body"],
    );
}

#[test]
fn long_texts_are_truncated_with_a_count_or_refused() {
    let long = "the world ".repeat(200);
    let input = write("long.txt", format!("short\n{long}\nshort again\n{long}\n").as_bytes());
    let out = run(&["--input", arg(&input), "--format", "jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let rows = jsonl_rows(&ok(out));
    assert_eq!(rows[1]["truncated"], true);
    assert_eq!(rows[1]["tokens"], 128);
    assert_eq!(rows[0]["truncated"], false);
    assert!(
        err.contains("note: 2 texts were longer than the context and were truncated (")
            && err.contains("-long.txt line 2, ")
            && err.contains("-long.txt line 4)"),
        "{err}"
    );
    fails_with(
        run(&["--input", arg(&input), "--no-truncate"]),
        1,
        &["long.txt line 2", "more than the 128-token context"],
    );
    let rows = jsonl_rows(&ok(run(&[
        "--input",
        arg(&input),
        "--no-truncate",
        "--skip-invalid",
        "--format",
        "jsonl",
    ])));
    assert!(rows[1]["embedding"].is_null() && rows[3]["embedding"].is_null() && !rows[2]["embedding"].is_null());
    // --quiet silences the note.
    let out = run(&["--input", arg(&input), "--quiet", "--format", "jsonl"]);
    assert!(out.status.success() && out.stderr.is_empty());
}

#[test]
fn output_files_statistics_and_usage() {
    let input = texts_jsonl();
    // The format comes from --output's extension; a failed job leaves no file behind.
    let out = tmp("vectors.csv");
    ok(run(&["--input", arg(&input), "--output", arg(&out)]));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("index,tokens,truncated,id,n,e0,"));
    let failed = tmp("failed.jsonl");
    let bad = write("late-bad.jsonl", b"{\"text\": \"a\"}\nnope\n");
    fails_with(run(&["--input", arg(&bad), "--output", arg(&failed)]), 1, &["line 2"]);
    assert!(!failed.exists());
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
            name.contains("failed.jsonl.") && name.ends_with(".partial")
        })
        .count();
    assert_eq!(leftovers, 0, "no partial file left");
    fails_with(
        run(&["--input", arg(&input), "--output", "x.weird"]),
        1,
        &["cannot tell the format"],
    );

    let stats = tmp("stats.json");
    let out = run(&[
        "--input",
        arg(&input),
        "--format",
        "jsonl",
        "--stats",
        "--stats-json",
        arg(&stats),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out);
    assert!(err.contains("stats: 6 texts") && err.contains("peak RSS"), "{err}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["texts"], 6);
    assert_eq!(s["rows"], 6);
    assert!(s["tokens"].as_u64().unwrap() > 12);
    assert!(
        s["passes"].as_u64().unwrap() >= 1 && s["pass_p95_ms"].as_f64().unwrap() >= s["pass_p50_ms"].as_f64().unwrap()
    );
    assert!(s["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(s["arena_bytes"].as_u64().unwrap() > 0 && s["threads"].as_u64().unwrap() >= 1);

    // Usage errors exit 2; a missing model says how to get one.
    let usage = bin().args(["run", "--format", "xml", "x"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let usage = bin().args(["run", "--chunk-overlap", "3", "x"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let missing = bin()
        .args(["run", "--model", "/nonexistent/model.gguf", "x"])
        .output()
        .unwrap();
    fails_with(
        missing,
        1,
        &[
            "no model file at /nonexistent/model.gguf",
            "scripts/fetch-model.sh",
            "--model",
        ],
    );
    fails_with(run(&["--batch-texts", "0", "x"]), 1, &["--batch-texts 0"]);
    fails_with(
        run(&["--input", "/nonexistent/in.jsonl"]),
        1,
        &["cannot open /nonexistent/in.jsonl"],
    );
    let help = ok(bin().args(["run", "--help"]).output().unwrap());
    assert!(String::from_utf8(help).unwrap().contains("Exit codes: 0 success, 1"));
}

/// Peak RSS of `run` over `lines` generated short texts, streamed through stdin.
fn peak_rss_for(lines: usize) -> u64 {
    let stats = tmp(&format!("rss-{lines}.json"));
    let mut child = bin()
        .args(["run", "--input", "-", "--format", "npy", "--output"])
        .arg(tmp(&format!("rss-{lines}.npy")))
        .args(["--batch-tokens", "4096", "--quiet", "--stats-json"])
        .arg(&stats)
        .arg("--model")
        .arg(model())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let words = ["the", "world", "rain", "on", "an", "other", "three", "win", "tea"];
    for i in 0..lines {
        writeln!(stdin, "{} {} {}", words[i % 9], words[i / 9 % 9], words[i / 81 % 9]).unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["texts"], lines);
    s["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn memory_does_not_grow_with_the_input() {
    let small = peak_rss_for(1_000);
    let large = peak_rss_for(30_000);
    // 30x the lines (and ~1 MB of npy written): the peak must not follow the input; allow
    // 4 MiB of allocator noise.
    assert!(
        large < small + (4 << 20),
        "peak RSS {small} bytes on 1,000 lines, {large} bytes on 30,000"
    );
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let words = ["the", "world", "rain", "on", "an", "other", "three", "win", "tea"];
    let lines: String = (0..8000)
        .map(|i| format!("{} {} {}\n", words[i % 9], words[i / 9 % 9], words[i / 81 % 9]))
        .collect();
    let input = write("progress.txt", lines.as_bytes());
    let out_file = tmp("progress.npy");
    // Not a terminal: nothing on stderr.
    let out = run(&["--input", arg(&input), "--output", arg(&out_file), "--threads", "1"]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    // A terminal (util-linux `script` gives the command a pseudo-terminal); the bar's delay set
    // to 0 so that a machine fast enough to finish within the default second shows it too.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping the terminal case: no `script`");
        return;
    }
    let cmd = format!(
        "{} run --model {} --input {} --output {} --threads 1",
        env!("CARGO_BIN_EXE_gemma-graph"),
        arg(&model()),
        arg(&input),
        arg(&out_file)
    );
    let log = tmp("progress.log");
    let status = Command::new("script")
        .env("GEMMA_GRAPH_PROGRESS_AFTER_MS", "0")
        .args(["-qec", &cmd])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let seen = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).to_string();
    assert!(seen.contains(" texts"), "no progress bar on a terminal: {seen:?}");
}

/// `-o` never replaces what it names: a FIFO's reader gets the rows, a symlink's target is
/// written and the link stays, `/dev/stdout` is the process's stdout, and no temporary file is
/// left beside any of them.
#[cfg(unix)]
#[test]
fn outputs_write_through_fifos_links_and_devices() {
    let input = texts_jsonl();
    let expected = ok(run(&["--input", arg(&input), "--format", "jsonl"]));

    let dir = tmp("through");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("rows.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(run(&["--input", arg(&input), "--format", "jsonl", "-o", arg(&fifo)]));
    assert_eq!(reader.join().unwrap(), expected, "the FIFO's reader got the rows");
    assert!(!std::fs::metadata(&fifo).unwrap().is_file(), "the FIFO is still a FIFO");

    let real = dir.join("real.jsonl");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    ok(run(&["--input", arg(&input), "-o", arg(&link)]));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), expected);

    let through = ok(run(&["--input", arg(&input), "--format", "jsonl", "-o", "/dev/stdout"]));
    assert_eq!(through, expected);
    ok(run(&["--input", arg(&input), "--format", "npy", "-o", "/dev/null"]));
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["link.jsonl", "real.jsonl", "rows.fifo"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Peak RSS of `run` over `input` with extra arguments.
fn peak_rss_of(tag: &str, input: &Path, extra: &[&str]) -> (u64, Value) {
    let stats = tmp(&format!("rss-{tag}.json"));
    let out = run(&[
        &[
            "--input",
            arg(input),
            "-o",
            arg(&tmp(&format!("rss-{tag}.out"))),
            "--quiet",
            "--stats-json",
            arg(&stats),
        ],
        extra,
    ]
    .concat());
    ok(out);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    (s["peak_rss_bytes"].as_u64().unwrap(), s)
}

/// Chunks that overlap by all but one token make one window per token: the windows are
/// embedded in bounded groups, not all held at once (a 1.1 MB line used to take 2.4 GB).
/// Copied columns count towards a window's bytes, so rows of many fields cannot pile up.
#[test]
fn chunk_overlap_and_copied_fields_do_not_multiply_memory() {
    let words = ["the", "world", "rain", "on", "an", "other", "three", "win", "tea"];
    let line: Vec<&str> = (0..8_000).map(|i| words[(i * 7) % 9]).collect();
    let input = write("one-long-line.txt", format!("{}\n", line.join(" ")).as_bytes());
    let jsonl = ["--format", "jsonl", "--chunk-tokens", "100"];
    let (apart, a) = peak_rss_of("chunks-apart", &input, &jsonl);
    let (dense, d) = peak_rss_of(
        "chunks-dense",
        &input,
        &[&jsonl[..], &["--chunk-overlap", "99"]].concat(),
    );
    let windows = d["rows"].as_u64().unwrap();
    assert!(windows > 50 * a["rows"].as_u64().unwrap(), "{windows} windows");
    // What stays per window is its place (~130 bytes: offsets, chunk numbers); its text, its
    // tokens and its vector are held only for its group. Held for every window at once they
    // were ~600 bytes a window here (2 kB+ on the real model's 2,048-token windows).
    assert!(
        dense < apart + windows * 256 + (2 << 20),
        "peak RSS {apart} bytes with {} windows, {dense} with {windows}",
        a["rows"]
    );

    // 1,500 JSONL rows, each with 2,000 small copied fields (~24 kB a line, ~200 kB held
    // once parsed): counted, a window holds a few dozen of them, not 1,024.
    let mut rows = String::new();
    for r in 0..1500 {
        rows.push('{');
        for f in 0..2000 {
            rows.push_str(&format!("\"f{f}\": {r}, "));
        }
        rows.push_str("\"text\": \"a short text\"}\n");
    }
    let wide = write("wide-rows.jsonl", rows.as_bytes());
    let few = write(
        "few-wide-rows.jsonl",
        rows.lines().take(40).collect::<Vec<_>>().join("\n").as_bytes(),
    );
    let (one_window, _) = peak_rss_of("wide-few", &few, &["--format", "jsonl"]);
    let (all, _) = peak_rss_of("wide-all", &wide, &["--format", "jsonl"]);
    assert!(
        all < one_window + (16 << 20),
        "peak RSS {one_window} bytes on 40 wide rows, {all} on 1,500"
    );
}

/// A classifier head file (safetensors: `weight [classes, dim]`, `bias [classes]`, labels).
fn head_file(name: &str, classes: usize, dim: usize, labels: Option<&str>) -> PathBuf {
    let w: Vec<u8> = (0..classes * dim)
        .flat_map(|i| ((i % 7) as f32 * 0.1).to_le_bytes())
        .collect();
    let b: Vec<u8> = (0..classes).flat_map(|_| 0f32.to_le_bytes()).collect();
    let views = vec![
        (
            "weight".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![classes, dim], &w).unwrap(),
        ),
        (
            "bias".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![classes], &b).unwrap(),
        ),
    ];
    let meta = labels.map(|l| std::collections::HashMap::from([("labels".to_string(), l.to_string())]));
    write(name, &safetensors::serialize(views, &meta).unwrap())
}

#[test]
fn head_files_without_classes_or_with_repeated_names_are_refused() {
    let rows = jsonl_rows(&ok(run(&["--format", "jsonl", "x"])));
    let dim = rows[0]["embedding"].as_array().unwrap().len();
    let good = head_file("head-good.safetensors", 2, dim, Some(r#"["spam", "ham"]"#));
    let out = String::from_utf8(ok(run(&["--head", arg(&good), "--format", "jsonl", "x"]))).unwrap();
    assert!(out.contains("\"spam\"") && out.contains("\"ham\""), "{out}");
    let empty = head_file("head-empty.safetensors", 0, dim, None);
    fails_with(run(&["--head", arg(&empty), "x"]), 1, &["\"weight\" has 0 rows"]);
    let twice = head_file("head-twice.safetensors", 2, dim, Some(r#"["spam", "spam"]"#));
    fails_with(
        run(&["--head", arg(&twice), "x"]),
        1,
        &["head-twice.safetensors", "\"spam\" appears more than once"],
    );
    let short = head_file("head-short.safetensors", 2, dim, Some(r#"["spam"]"#));
    fails_with(run(&["--head", arg(&short), "x"]), 1, &["1 names for 2 classes"]);
}

/// `--output-dtype`: each dtype's rows are the library's `quantize_row` of the float32 rows
/// (the rule tests/output_dtype_golden.rs holds to sentence-transformers byte for byte), in
/// every format; npy headers carry numpy's dtype; int8/uint8 take ranges only from
/// `--calibration`, checked before any text runs.
#[test]
fn output_dtypes_store_the_float_rows_quantized() {
    use gemma_graph::{quantize_row, OutputDtype, Ranges};
    let input = texts_jsonl();
    let floats_npy = tmp("dtype-f32.npy");
    ok(run(&["--input", arg(&input), "-o", arg(&floats_npy)]));
    let floats = npy_vectors(&std::fs::read(&floats_npy).unwrap());
    let dim = floats[0].len();
    // The calibration: these rows themselves (as sentence-transformers does without one).
    let flat: Vec<f32> = floats.concat();
    let ranges = Ranges::from_calibration(&flat, dim).unwrap();
    for dtype in OutputDtype::ALL {
        let mut want = Vec::new();
        for row in &floats {
            quantize_row(row, dtype, Some(&ranges), &mut want).unwrap();
        }
        let mut args = vec!["--input", arg(&input), "--output-dtype", dtype.name()];
        if dtype.needs_ranges() {
            args.extend(["--calibration", arg(&floats_npy)]);
        }
        // npy: numpy's dtype, bit-packed rows of dim/8 bytes.
        let out = tmp(&format!("dtype-{dtype}.npy"));
        ok(run(&[&args[..], &["-o", arg(&out)]].concat()));
        let bytes = std::fs::read(&out).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        let cols = dtype.row_len(dim);
        assert!(
            header.contains(&format!("'descr': '{}'", dtype.numpy_descr())),
            "{dtype}: {header}"
        );
        assert!(
            header.contains(&format!("'shape': ({}, {cols})", TEXTS.len())),
            "{dtype}: {header}"
        );
        assert!(
            bytes[10 + hlen..] == want[..],
            "{dtype}: npy rows differ from quantize_row"
        );
        // JSONL: the stored numbers (integers for byte dtypes).
        let rows = jsonl_rows(&ok(run(&[&args[..], &["--format", "jsonl"]].concat())));
        // (JSON floats are the shortest text of the f32: compared as f32.)
        let values: Vec<f32> = gemma_graph::stored_values(&want, dtype)
            .to_f64()
            .into_iter()
            .map(|x| x as f32)
            .collect();
        for (i, row) in rows.iter().enumerate() {
            let got: Vec<f32> = row["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, values[i * cols..(i + 1) * cols], "{dtype}: row {i}");
            if dtype.element_bytes() == 1 {
                assert!(row["embedding"][0].is_i64(), "{dtype}: integers, not floats");
            }
        }
        // CSV: e0..e{cols-1}.
        let (header, table) = table_vectors(&ok(run(&[&args[..], &["--format", "csv"]].concat())), b',');
        assert_eq!(header.last().unwrap(), &format!("e{}", cols - 1));
        let cells: Vec<f32> = table[1][table[1].len() - cols..]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(cells, values[cols..2 * cols], "{dtype}: csv row 1");
        numpy_reads_as(&out, dtype.numpy_descr(), TEXTS.len(), cols);
    }
    // int8 without ranges, ranges of another width, and an npy row that cannot be NaN.
    fails_with(
        run(&["--input", arg(&input), "--output-dtype", "int8"]),
        1,
        &["needs --calibration"],
    );
    fails_with(
        run(&["--input", arg(&input), "--output-dtype", "int4"]),
        2,
        &["int4", "ubinary"],
    );
    fails_with(
        run(&[
            "--input",
            arg(&input),
            "--output-dtype",
            "binary",
            "--calibration",
            arg(&floats_npy),
        ]),
        1,
        &["int8 and uint8 only"],
    );
    let half = tmp("dtype-half-width.npy");
    let mut bytes = gemma_graph::npy::header(TEXTS.len(), dim / 2);
    bytes.extend(
        floats
            .iter()
            .flat_map(|r| r[..dim / 2].iter().flat_map(|x| x.to_le_bytes())),
    );
    std::fs::write(&half, bytes).unwrap();
    fails_with(
        run(&[
            "--input",
            arg(&input),
            "--output-dtype",
            "uint8",
            "--calibration",
            arg(&half),
        ]),
        1,
        &[&format!("{} columns, but the output has {dim}", dim / 2)],
    );
    fails_with(
        run(&[
            "--input",
            arg(&input),
            "--output-dtype",
            "ubinary",
            "--skip-invalid",
            "-o",
            arg(&tmp("x.npy")),
        ]),
        1,
        &["NaN row"],
    );
}

/// numpy loads an npy `run` wrote, with this dtype and shape.
fn numpy_reads_as(path: &Path, descr: &str, rows: usize, cols: usize) {
    let Ok(python) = std::env::var("GEMMA_GRAPH_PYTHON") else {
        eprintln!("skipping the numpy check: GEMMA_GRAPH_PYTHON is not set");
        return;
    };
    let script = format!(
        "import numpy as np; a = np.load({:?}); assert a.dtype == np.dtype({descr:?}) and a.shape == ({rows}, {cols}), (a.dtype, a.shape)",
        path.to_str().unwrap()
    );
    let o = Command::new(&python).args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "numpy: {}", String::from_utf8_lossy(&o.stderr));
}
