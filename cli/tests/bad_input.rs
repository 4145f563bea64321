//! Bad input of every kind against the binary: each case asserts its message and its exit
//! code (0 success, 1 error, 2 usage). Uses the tiny random model, so it runs in seconds.

use gg_testing::tiny;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use gemma_graph::loader::gguf::Value;
use tiny::{tiny_model_file, TinySpec};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gemma-graph"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gemma-graph-bad-{}-{name}", std::process::id()))
}

fn model() -> PathBuf {
    static MODEL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| tiny_model_file("bad-input", &TinySpec::default()))
        .clone()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).arg("--model").arg(model()).output().unwrap()
}

/// The command failed with exit code `code` and a message containing every needle.
fn fails_with(out: Output, code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} does not mention {n:?}");
    }
    err
}

fn succeeds(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {err}");
    String::from_utf8(out.stdout).unwrap()
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn jsonl_vectors(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn unbounded_lines_are_refused_by_length() {
    // Used to read one endless line into an 8 GB allocation and abort.
    let out = run(&["run", "--input", "/dev/zero"]);
    fails_with(out, 1, &["/dev/zero line 1", "longer than --max-text-bytes"]);
    let long = write(
        "long.jsonl",
        format!("{{\"text\": \"{}\"}}\n", "a".repeat(5000)).as_bytes(),
    );
    let out = run(&["run", "--max-text-bytes", "1000", "--input", long.to_str().unwrap()]);
    fails_with(out, 1, &["line 1", "longer than --max-text-bytes 1000"]);
    let out = run(&["run", "--max-text-bytes", "3", "abcdef"]);
    fails_with(out, 1, &["text argument 1 has 6 bytes"]);
}

#[test]
fn input_lines_bom_crlf_blank_and_invalid_utf8() {
    let plain = succeeds(run(&["run", "--format", "jsonl", "hello world", "the end"]));
    // A UTF-8 byte-order mark and CRLF line ends are what editors write: accepted, same vectors.
    let bom = write(
        "bom.jsonl",
        b"\xEF\xBB\xBF{\"text\": \"hello world\"}\r\n{\"text\": \"the end\"}\r\n",
    );
    let out = succeeds(run(&["run", "--format", "jsonl", "--input", bom.to_str().unwrap()]));
    assert_eq!(jsonl_vectors(&out), jsonl_vectors(&plain));
    let blank = write("blank.jsonl", b"{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n");
    fails_with(
        run(&["run", "--input", blank.to_str().unwrap()]),
        1,
        &["line 2: empty line"],
    );
    let bad = write("utf8.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"\xFF\xFE\"}\n");
    fails_with(
        run(&["run", "--input", bad.to_str().unwrap()]),
        1,
        &["line 2: not valid UTF-8"],
    );
    let not_json = write("notjson.jsonl", b"{\"text\": \"a\"}\nnot json\n");
    fails_with(
        run(&["run", "--input", not_json.to_str().unwrap()]),
        1,
        &["line 2: not valid JSON"],
    );
}

#[test]
fn model_paths_that_are_not_files() {
    let out = bin().args(["run", "--model", "/tmp", "x"]).output().unwrap();
    fails_with(out, 1, &["/tmp", "is a directory"]);
    let out = bin()
        .args(["inspect", "--model", "/nonexistent.gguf"])
        .output()
        .unwrap();
    fails_with(out, 1, &["/nonexistent.gguf", "No such file"]);
}

#[test]
fn sizes_asked_for_are_bounded() {
    // Used to abort on a 1e9-token arena, or panic on capacity overflow.
    for tokens in ["1000000000", "18446744073709551615"] {
        let out = run(&["dump", "--tokens", tokens]);
        fails_with(out, 1, &["max_batch_tokens", "at most 65536"]);
    }
    let out = run(&["run", "--threads", "100000", "x"]);
    fails_with(out, 1, &["threads 100000", "per core"]);
    let out = run(&["run", "--graph", "/dev/zero", "x"]);
    fails_with(out, 1, &["/dev/zero", "not a saved graph"]);
}

#[test]
fn closed_full_and_short_lived_stdout() {
    // `inspect | head -c 10`: used to panic; the reader going away ends the command quietly.
    let mut child = bin()
        .args(["inspect", "--model"])
        .arg(model())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // A full disk is an error naming standard output.
    let full = bin()
        .args(["inspect", "--model"])
        .arg(model())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    fails_with(full, 1, &["writing to standard output", "No space left"]);
    // A closed stdout (`>&-`) would lose the output: refused.
    let closed = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" inspect --model \"$1\" >&-")
        .arg(env!("CARGO_BIN_EXE_gemma-graph"))
        .arg(model())
        .output()
        .unwrap();
    fails_with(closed, 1, &["standard output is closed"]);
}

#[test]
fn control_literals_can_be_plain_text() {
    let special = succeeds(run(&["run", "<bos><eos>"]));
    let plain = succeeds(run(&["run", "--plain-control", "<bos><eos>"]));
    // Control literals are two ids; as plain text they are several pieces.
    assert!(special.contains("\t4 tokens"), "{special}");
    assert!(!plain.contains("\t4 tokens"), "{plain}");
}

/// The tiny model's compiled graph as `dump --format ron` saves it (planned for 64 tokens).
fn saved_graph(name: &str) -> (PathBuf, String) {
    let ron = tmp(name);
    succeeds(run(&[
        "dump",
        "--format",
        "ron",
        "--tokens",
        "64",
        "-o",
        ron.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&ron).unwrap();
    (ron, text)
}

/// `run --graph` on an edited copy of a saved graph.
fn run_edited_graph(name: &str, text: &str) -> Output {
    let edited = write(name, text.as_bytes());
    run(&["run", "--graph", edited.to_str().unwrap(), "x"])
}

#[test]
fn saved_graphs_are_checked_not_trusted() {
    let (ron, text) = saved_graph("g.ron");
    succeeds(run(&["run", "--graph", ron.to_str().unwrap(), "x"]));
    // The plan section used to be ignored whatever it said.
    let at = text.find("arena_bytes: ").unwrap() + "arena_bytes: ".len();
    let end = at + text[at..].find(',').unwrap();
    let edited = format!("{}1{}", &text[..at], &text[end..]);
    fails_with(run_edited_graph("plan.ron", &edited), 1, &["saved graph", "plan"]);
}

#[test]
fn corrupt_values_in_a_model_file_are_named() {
    for (tag, key, value, needle) in [
        (
            "eps",
            "attention.layer_norm_rms_epsilon",
            Some(Value::F32(f32::NAN)),
            "layer_norm_rms_epsilon",
        ),
        ("window", "attention.sliding_window", None, "attention.sliding_window"),
        ("pool0", "pooling_type", Some(Value::U32(0)), "pooling_type is 0"),
        ("ctx1", "context_length", Some(Value::U32(1)), "BOS and EOS"),
        (
            "ctx1e9",
            "context_length",
            Some(Value::U32(1_000_000_000)),
            "at most 131072",
        ),
        ("base0", "rope.freq_base", Some(Value::F32(0.0)), "rope.freq_base"),
        ("blocks", "block_count", Some(Value::U32(1)), "tensors for 2 blocks"),
        ("dense", "dense_2_feat_out", Some(Value::U32(5)), "dense_2.weight"),
    ] {
        let path = tiny_model_file(
            tag,
            &TinySpec {
                layers: 2,
                meta: vec![(key.into(), value)],
                ..Default::default()
            },
        );
        let out = bin().args(["run", "--model"]).arg(&path).arg("x").output().unwrap();
        fails_with(out, 1, &[needle]);
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn saved_graph_with_swapped_inputs_is_refused() {
    // Used to panic in a worker thread inside the RoPE kernel.
    let (_, text) = saved_graph("swap.ron");
    let swapped = text
        .replace("Input(TokenIds)", "Input(X)")
        .replace("Input(Positions)", "Input(TokenIds)")
        .replace("Input(X)", "Input(Positions)");
    assert_ne!(swapped, text);
    fails_with(
        run_edited_graph("swapped.ron", &swapped),
        1,
        &["must be the batch's", "input"],
    );
}

#[test]
fn wrong_tensor_shapes_are_shown_as_inspect_shows_them() {
    // The error used to print dims outermost-first while `inspect` prints innermost-first.
    let path = tiny_model_file(
        "shape",
        &TinySpec {
            layers: 1,
            meta: vec![("feed_forward_length".into(), Some(Value::U32(64)))],
            ..Default::default()
        },
    );
    let out = bin().args(["run", "--model"]).arg(&path).arg("x").output().unwrap();
    fails_with(
        out,
        1,
        &[
            "blk.0.ffn_gate.weight",
            "dims [64, 96] (innermost first",
            "expected [64, 64]",
        ],
    );
    std::fs::remove_file(path).ok();
}

#[test]
fn non_finite_weights_are_refused_at_load() {
    // A NaN in a norm weight, or in a Q8_0 scale, used to give NaN (JSON null) vectors with
    // exit 0.
    let bytes = tiny::tiny_gguf(&TinySpec {
        layers: 1,
        ..Default::default()
    });
    let g = gemma_graph::loader::gguf::Gguf::from_bytes(&bytes).unwrap();
    let patch = |tensor: &str, at: usize, with: &[u8]| {
        let t = g.tensor(tensor).unwrap();
        let start = (g.data_start() + t.offset) as usize + at;
        let mut b = bytes.clone();
        b[start..start + with.len()].copy_from_slice(with);
        b
    };
    for (tag, file, needle) in [
        (
            "nan-norm",
            patch("blk.0.ffn_norm.weight", 8, &f32::NAN.to_le_bytes()),
            "blk.0.ffn_norm.weight",
        ),
        // The f16 scale of the 3rd block: +Inf is 0x7C00.
        (
            "inf-scale",
            patch("blk.0.ffn_up.weight", 2 * 34, &[0x00, 0x7C]),
            "blk.0.ffn_up.weight",
        ),
    ] {
        let path = write(&format!("{tag}.gguf"), &file);
        let out = bin().args(["run", "--model"]).arg(&path).arg("x").output().unwrap();
        fails_with(out, 1, &[needle, "NaN or infinite"]);
    }
}

#[test]
fn converter_checks_its_output_path_first() {
    let dir = tmp("convert-out");
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = tmp("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    let started = std::time::Instant::now();
    let out = bin()
        .arg("convert")
        .arg(&ckpt)
        .arg("-o")
        .arg(format!("{}/", dir.display()))
        .output()
        .unwrap();
    fails_with(out, 1, &["is a directory"]);
    assert!(started.elapsed().as_secs() < 5, "refused before converting");
    let out = bin()
        .arg("convert")
        .arg(&ckpt)
        .arg("-o")
        .arg("/nonexistent-dir/x.gguf")
        .output()
        .unwrap();
    fails_with(out, 1, &["/nonexistent-dir", "does not exist"]);
}

#[test]
fn misaligned_tensor_data_names_the_tensor() {
    // `general.alignment = 1` packs tensors back to back: with 34-byte Q8_0 rows an f32 norm
    // can start off its 4-byte alignment. Whichever files of these end up misaligned must be
    // refused naming the tensor; the others load.
    let mut refused = 0;
    for layers in 1..=4 {
        let path = tiny_model_file(
            &format!("align1-{layers}"),
            &TinySpec {
                layers,
                d: 32,
                head_dim: 16,
                meta: vec![("general.alignment".into(), Some(Value::U32(1)))],
                ..Default::default()
            },
        );
        let out = bin().args(["run", "--model"]).arg(&path).arg("x").output().unwrap();
        if !out.status.success() {
            let err = fails_with(out, 1, &[".weight", "aligned"]);
            eprintln!("layers {layers}: {err}");
            refused += 1;
        }
        std::fs::remove_file(path).ok();
    }
    assert!(refused > 0, "no layout came out misaligned; the case is not exercised");
}

#[test]
fn usage_errors_exit_2() {
    let out = bin().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["run", "--threads", "many", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serve_refuses_an_empty_api_key_and_an_impossible_timeout_before_listening() {
    // `--api-key "$UNSET"` used to serve without auth while logging "auth: bearer"; a timeout
    // beyond what a duration holds used to panic. Both are refused before the port is bound.
    let serve = |extra: &[&str], env_key: Option<&str>| {
        let mut c = bin();
        c.args(["serve", "--port", "0"]).args(extra).arg("--model").arg(model());
        c.env_remove("GEMMA_GRAPH_API_KEY");
        if let Some(k) = env_key {
            c.env("GEMMA_GRAPH_API_KEY", k);
        }
        c.stdin(Stdio::null()).output().unwrap()
    };
    fails_with(serve(&["--api-key", ""], None), 1, &["--api-key is empty"]);
    fails_with(serve(&[], Some("")), 1, &["GEMMA_GRAPH_API_KEY is empty"]);
    for name in ["request-timeout", "body-timeout", "header-timeout"] {
        for t in ["1e20", "0", "-1", "nan"] {
            let flag = format!("--{name}={t}");
            fails_with(serve(&[&flag], None), 1, &[&format!("--{name}"), "positive"]);
        }
    }
    fails_with(serve(&["--max-connections", "0"], None), 1, &["--max-connections"]);
    fails_with(
        serve(&["--allowed-host", "*", "--allowed-host", "a"], None),
        1,
        &["`*`"],
    );
    // A batch budget below the context failed every full-length text (and, at 1, the warm-up,
    // while /health said 200): refused before listening.
    fails_with(
        serve(&["--max-batch-tokens", "64"], None),
        1,
        &["--max-batch-tokens 64 is below the model's context"],
    );
}

/// Out of file descriptors (a low `ulimit -n` and a connection cap set past it), `accept`
/// fails on every try: the server waits between tries and logs the error once a second with
/// a count (it used to log every 50 ms), and by default its cap keeps it from getting there.
#[cfg(unix)]
#[test]
fn serve_out_of_file_descriptors_logs_once_a_second() {
    let run = |cap: &str| {
        let script = format!(
            "ulimit -n 200 && exec {} serve --port 0 --model {} {cap}",
            env!("CARGO_BIN_EXE_gemma-graph"),
            model().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr: std::net::SocketAddr = loop {
            use std::io::BufRead;
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited");
            if let Some(at) = line.find("address=") {
                break line[at + 8..].split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let log = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            rest
        });
        // 150 connections that each send half a request head and stall.
        let started = std::time::Instant::now();
        let mut held = Vec::new();
        for _ in 0..150 {
            if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                use std::io::Write;
                let _ = c.write_all(b"POST /embed HTTP/1.1\r\n");
                held.push(c);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let health = {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
            let _ = c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let mut reply = [0u8; 12];
            let n = c.read(&mut reply).unwrap_or(0);
            String::from_utf8_lossy(&reply[..n]).into_owned()
        };
        child.kill().unwrap();
        child.wait().unwrap();
        (log.join().unwrap(), health, started.elapsed())
    };
    let (log, _, took) = run("--max-connections 1000");
    // Every 50 ms this was ~20 lines a second.
    let failures = log.matches("accept failed").count();
    let most = took.as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&failures),
        "{failures} accept-failure lines in {took:?}:\n{log}"
    );
    // The default cap, from the same limit: (200 − 64 − 32) / 2 = 52 connections; the 53rd and
    // on get the canned 503 (or, past 32 refusals at once, a closed connection) and accept
    // never fails.
    let (log, health, _) = run("");
    assert_eq!(log.matches("accept failed").count(), 0, "{log}");
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
}
