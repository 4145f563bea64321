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
    // The measured accuracy of the file's type (general.file_type 7: q8_0).
    let acc = &v["type_accuracy"];
    assert_eq!(acc["type"], "q8_0", "{acc}");
    assert!(
        acc["exact"]["vs_exact_answer_min"].as_f64().unwrap() >= 0.99999,
        "{acc}"
    );
    assert!(acc["fast"]["vs_st_f32"]["mean"].as_f64().unwrap() > 0.999, "{acc}");
    let text = ok(bin().arg("inspect").output().unwrap());
    assert!(text.contains("global layers     [5, 11, 17, 23]"), "{text}");
    assert!(
        text.contains("accuracy of this file type") && text.contains("q8_0 as `convert` writes it"),
        "{text}"
    );
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
    // Fast precision (the default): integer matmuls over 16-bit activation blocks.
    assert!(
        out.contains("precision fast") && out.contains("scalar.matmul<q8_0×i16>") && out.contains("scalar.attention"),
        "{out}"
    );
    let exact = ok(bin()
        .args(["dump", "--backend", "scalar", "--layers", "1", "--precision", "exact"])
        .output()
        .unwrap());
    assert!(
        exact.contains("precision exact") && exact.contains("scalar.matmul<q8_0>") && !exact.contains("×i16"),
        "{exact}"
    );
    // int8: 8-bit activation blocks, on the tiers that have kernels for it.
    let int8 = ok(bin()
        .args(["dump", "--backend", "scalar", "--layers", "1", "--precision", "int8"])
        .output()
        .unwrap());
    assert!(
        int8.contains("precision int8") && int8.contains("scalar.matmul<q8_0×i8>") && !int8.contains("×i16"),
        "{int8}"
    );
    if gemma_graph::Backend::Avx2.is_available() {
        // AVX2 has none (8-bit products are no faster there): a clear error before any text.
        let e = fails(
            bin()
                .args(["run", "--backend", "avx2", "--precision", "int8", "x"])
                .output()
                .unwrap(),
        );
        assert!(
            e.contains("int8 precision on the avx2 backend") && e.contains("avx512 with VNNI"),
            "{e}"
        );
    }
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
    let name = out_path.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers = std::fs::read_dir(out_path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{name}.")) && n.ends_with(".partial"))
        .count();
    assert_eq!(leftovers, 0, "no partial file left behind");
}

fn rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn dim_outputs_are_renormalized_prefixes() {
    let texts = [
        "How do I bake bread?",
        "Matryoshka embeddings nest smaller vectors in larger ones.",
    ];
    let full = embeddings(&ok(bin()
        .args(["run", "--format", "jsonl"])
        .args(texts)
        .output()
        .unwrap()));
    for dim in ["512", "256", "128"] {
        let small = embeddings(&ok(bin()
            .args(["run", "--format", "jsonl", "--dim", dim])
            .args(texts)
            .output()
            .unwrap()));
        let d: usize = dim.parse().unwrap();
        for (s, f) in small.iter().zip(&full) {
            assert_eq!(s.len(), d);
            let norm = f[..d].iter().map(|x| x * x).sum::<f64>().sqrt();
            for (a, b) in s.iter().zip(&f[..d]) {
                assert!((a - b / norm).abs() < 1e-6, "dim {dim}: {a} vs {}", b / norm);
            }
        }
    }
    let bad = bin().args(["run", "--dim", "300", "x"]).output().unwrap();
    assert!(fails(bad).contains("--dim 300 is not one of 768, 512, 256, 128"));
}

/// The first 40 documents of the bench corpus, without the document prompt they carry.
fn corpus() -> PathBuf {
    let docs = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/docs.jsonl"))
        .unwrap();
    let lines: Vec<String> = docs
        .lines()
        .take(40)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["text"].as_str().unwrap().trim_start_matches("title: none | text: ");
            serde_json::json!({ "text": t }).to_string()
        })
        .collect();
    let p = tmp("corpus.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn search_finds_the_document_and_reuses_saved_vectors() {
    let corpus = corpus();
    let search = |extra: &[&str]| {
        rows(&ok(bin()
            .args([
                "search",
                "--format",
                "jsonl",
                "--top",
                "3",
                "-q",
                "software to edit DNA and plasmid maps",
                "--input",
            ])
            .arg(&corpus)
            .args(extra)
            .output()
            .unwrap()))
    };
    let fresh = search(&[]);
    let results = fresh[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results[0]["text"].as_str().unwrap().starts_with("GENtle"),
        "{}",
        results[0]
    );
    assert_eq!(results[0]["index"], 1);
    let s: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(s[0] >= s[1] && s[1] >= s[2]);

    // The same corpus embedded once with `run`, then searched from the file: same answer.
    let npy = tmp("corpus.npy");
    ok(bin()
        .args(["run", "--prompt", "document", "--quiet", "--input"])
        .arg(&corpus)
        .arg("--output")
        .arg(&npy)
        .output()
        .unwrap());
    // The same documents in the same order as the fresh search, scores within `tolerance`.
    let same_results = |other: &[serde_json::Value], tolerance: f64| {
        for (a, b) in fresh[0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(other[0]["results"].as_array().unwrap())
        {
            assert_eq!(a["index"], b["index"]);
            assert!(
                (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < tolerance,
                "{a} {b}"
            );
        }
    };
    same_results(&search(&["--embeddings", npy.to_str().unwrap()]), 1e-6);
    // Vectors of another corpus are refused.
    let other = tmp("other.jsonl");
    std::fs::write(&other, "{\"text\": \"one\"}\n").unwrap();
    let e = fails(
        bin()
            .args(["search", "-q", "x", "--input"])
            .arg(&other)
            .arg("--embeddings")
            .arg(&npy)
            .output()
            .unwrap(),
    );
    assert!(e.contains("40 rows, but the corpus has 1 texts"), "{e}");

    // Vectors of a width the model does not make are refused; rows of huge values (scaled
    // by 1e30, past f32's dot product) still score their cosine, not -inf.
    let bytes = std::fs::read(&npy).unwrap();
    let (rows_n, dim, values) = gemma_graph::npy::parse(&bytes).unwrap();
    let write_npy = |name: &str, rows_n: usize, dim: usize, v: &[f32]| {
        let mut out = gemma_graph::npy::header(rows_n, dim);
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        let p = tmp(name);
        std::fs::write(&p, out).unwrap();
        p
    };
    let narrow = write_npy("narrow.npy", rows_n, 300, &values[..rows_n * 300]);
    let e = fails(
        bin()
            .args(["search", "-q", "x", "--input"])
            .arg(&corpus)
            .arg("--embeddings")
            .arg(&narrow)
            .output()
            .unwrap(),
    );
    assert!(e.contains("300-dimensional vectors are not this model's"), "{e}");
    let huge: Vec<f32> = values.iter().map(|x| x * 1e30).collect();
    let huge = write_npy("huge.npy", rows_n, dim, &huge);
    same_results(&search(&["--embeddings", huge.to_str().unwrap()]), 1e-5);
}

#[test]
fn similarity_is_the_cosine_of_run_vectors() {
    let texts = [
        "A cat sits on the mat",
        "A kitten rests on the rug",
        "Stock markets fell today",
    ];
    let out = ok(bin()
        .args(["similarity", "--prompt", "STS", "--format", "json"])
        .args(texts)
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m: Vec<Vec<f64>> = v["similarity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    let vecs = embeddings(&ok(bin()
        .args(["run", "--prompt", "STS", "--format", "jsonl"])
        .args(texts)
        .output()
        .unwrap()));
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = vecs[i].iter().zip(&vecs[j]).map(|(a, b)| a * b).sum();
            assert!((m[i][j] - dot).abs() < 1e-5, "[{i}][{j}] {} vs {dot}", m[i][j]);
            assert!((m[i][j] - m[j][i]).abs() < 1e-6);
        }
        assert!((m[i][i] - 1.0).abs() < 1e-5);
    }
    assert!(
        m[0][1] > m[0][2] + 0.2,
        "cats are closer to kittens than to stock markets: {m:?}"
    );
    let text = ok(bin().args(["similarity", "a", "b"]).output().unwrap());
    assert!(text.contains("[0] \"a\"") && text.contains("1.0000"), "{text}");
}

/// A 2-bit file written by our converter embeds from `run --model FILE`: the first golden texts'
/// vectors at cosine ≥ 0.99999 with that file's exact answer (`st_w` of
/// ../shared/golden/formats/Q2_K.jsonl), and `inspect` names the type's measured accuracy.
#[test]
fn a_converted_q2_k_file_embeds_from_run() {
    use gg_testing::{checkpoint_dir, cosine, golden_file, read_jsonl, vec_of};
    let file = tmp("q2_k.gguf");
    ok(bin()
        .arg("convert")
        .arg(checkpoint_dir())
        .args(["--type", "q2_k", "-o"])
        .arg(&file)
        .output()
        .unwrap());
    let want = read_jsonl(&golden_file("formats/Q2_K.jsonl"));
    let texts = read_jsonl(&golden_file("embeddings.jsonl"));
    // Four texts of some length (the golden set opens with edge cases: "", "a", " ", "\n").
    let picked: Vec<usize> = (0..texts.len())
        .filter(|&i| texts[i]["text"].as_str().unwrap().len() > 40)
        .take(4)
        .collect();
    let input = tmp("q2_k-texts.jsonl");
    let lines: Vec<String> = picked
        .iter()
        .map(|&i| serde_json::json!({"text": texts[i]["text"]}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = ok(bin()
        .args(["run", "--format", "jsonl", "--model"])
        .arg(&file)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap());
    let got = embeddings(&out);
    assert_eq!(got.len(), 4);
    for (v, &i) in got.iter().zip(&picked) {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        let c = cosine(&v, &vec_of(&want[i]["st_w"]).unwrap());
        assert!(c >= 0.99999, "text {i}: cosine {c} with the Q2_K file's exact answer");
    }
    let text = ok(bin().args(["inspect", "--model"]).arg(&file).output().unwrap());
    assert!(text.contains("q2_k as `convert` writes it"), "{text}");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&input);
}
