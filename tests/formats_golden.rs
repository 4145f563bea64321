//! Exactness per weight type on ../shared/golden/formats/<TYPE>.jsonl, on files written by our
//! converter (`common::formats::model_file`: equal to llama.cpp's quantizer output, tensor
//! for tensor).
//!
//! For every text: the `exact` precision's vector has cosine ≥ 0.99999 with `st_w` (the exact
//! answer for that file); the default (`fast`) precision's ≥ 0.99999 with `st_w`, and is at
//! least as close to `st_f32` as llama.cpp's vector on the same file is, less 0.0005 — or, where
//! llama.cpp's 8-bit activations happen to land nearer `st_f32` than the file's exact answer
//! itself does (a few texts of the 4-bit files), as close as that exact answer, less 0.0005.
//! Those texts are counted and printed. Where the best backend has the int8 precision, it is
//! held to llama.cpp's accuracy on the same file (`check_int8`: mean and worst cosine with
//! `st_w`).
//!
//! Which texts: the 82 of fewer than 100 tokens by default (1,444 tokens per pass, so ten types
//! × two precisions fit in CI); `GEMMA_GRAPH_FORMATS_FULL=1` runs all 99 (11,596 tokens, up to
//! 2,048 in one text), as the README's table was made. The
//! best backend of this CPU runs those texts in both precisions; the other backends it can run
//! (scalar, AVX2 below AVX-512) run the first 4 (their kernels are tied to the same
//! specification by the parity tests). F32's exact answer is `st_f32` itself, and Q8_0's is
//! `st_q8w`: embeddings_golden.rs covers the Q8_0 file on every text and backend.
//! `--nocapture` prints the accuracy table of the README.

use gg_testing as common;

use common::formats::model_file;
use common::*;
use gemma_graph::loader::convert::OutType;
use gemma_graph::{Backend, BackendChoice, EmbedOptions, Model, ModelOptions, Precision, SentenceTransformersHead};
use serde_json::Value as Json;

const OTHER_BACKEND_TEXTS: usize = 4;
/// Texts of at least this many tokens run only with `GEMMA_GRAPH_FORMATS_FULL=1`.
const LONG_TOKENS: usize = 100;

#[derive(Clone)]
struct Line {
    text: String,
    st_f32: Vec<f64>,
    st_w: Vec<f64>,
    llama: Option<Vec<f64>>,
}

fn lines(ty: OutType) -> Vec<Line> {
    let base = read_jsonl(&golden_file("embeddings.jsonl"));
    let upper = ty.name().to_ascii_uppercase();
    let per_type: Option<Vec<Json>> = match ty {
        OutType::F32 | OutType::Q8_0 => None,
        _ => Some(read_jsonl(&golden_file(&format!("formats/{upper}.jsonl")))),
    };
    let full = std::env::var_os("GEMMA_GRAPH_FORMATS_FULL").is_some();
    base.iter()
        .enumerate()
        .filter(|(_, l)| full || l["ids"].as_array().unwrap().len() < LONG_TOKENS)
        .map(|(i, l)| {
            let st_f32 = vec_of(&l["st_f32"]).unwrap();
            let (st_w, llama) = match (&per_type, ty) {
                (Some(p), _) => {
                    assert_eq!(p[i]["id"], l["id"], "{upper}.jsonl is in embeddings.jsonl's order");
                    (vec_of(&p[i]["st_w"]).unwrap(), vec_of(&p[i]["llama"]))
                }
                (None, OutType::Q8_0) => (vec_of(&l["st_q8w"]).unwrap(), vec_of(&l["llama_q8_0"])),
                (None, _) => (st_f32.clone(), None),
            };
            Line {
                text: l["text"].as_str().unwrap().to_string(),
                st_f32,
                st_w,
                llama,
            }
        })
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

struct Summary {
    min_w: f64,
    /// Each text's cosine with `st_f32` and with `st_w`.
    to_f32: Vec<f64>,
    to_w: Vec<f64>,
    /// Texts where llama.cpp's vector is nearer `st_f32` than ours by more than 0.0005.
    llama_nearer: usize,
}

/// Embed `lines` with one backend and precision; the failures, and the cosines' summary.
fn run(ty: OutType, backend: Backend, precision: Precision, lines: &[Line]) -> (Vec<String>, Summary) {
    let opts = ModelOptions {
        backend: BackendChoice::Force(backend),
        precision,
        ..Default::default()
    };
    let model = Model::load_with(model_file(ty), &opts, &SentenceTransformersHead).unwrap();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let started = std::time::Instant::now();
    let out = model.embed(&texts, &EmbedOptions::default()).unwrap();
    eprintln!(
        "{} {backend:?} {precision:?}: {} texts in {:.1} s",
        ty.name(),
        texts.len(),
        started.elapsed().as_secs_f64()
    );
    let bar = match precision {
        Precision::Exact => 0.99999,
        Precision::Fast => 0.99999,
        // Held to llama.cpp's own accuracy over all the texts ([`check_int8`]), not per text.
        Precision::Int8 => 0.0,
    };
    let mut failures = Vec::new();
    let mut s = Summary {
        min_w: f64::INFINITY,
        to_f32: Vec::new(),
        to_w: Vec::new(),
        llama_nearer: 0,
    };
    for (i, l) in lines.iter().enumerate() {
        let ours = out.vector(i);
        let to_w = cosine(ours, &l.st_w);
        let to_f32 = cosine(ours, &l.st_f32);
        s.min_w = s.min_w.min(to_w);
        s.to_f32.push(to_f32);
        s.to_w.push(to_w);
        if to_w < bar {
            failures.push(format!(
                "{ty:?} {backend:?} {precision:?} text {i}: cos(st_w) {to_w:.7} < {bar}"
            ));
        }
        if let (Precision::Fast, Some(llama)) = (precision, &l.llama) {
            let llama_to_f32 = cosine(&f32s(llama), &l.st_f32);
            let exact_to_f32 = cosine(&f32s(&l.st_w), &l.st_f32);
            if to_f32 < llama_to_f32 - 0.0005 {
                s.llama_nearer += 1;
                eprintln!(
                    "{} text {i}: llama.cpp nearer st_f32: {llama_to_f32:.6} vs ours {to_f32:.6} (the file's exact answer: {exact_to_f32:.6})",
                    ty.name()
                );
            }
            if to_f32 < llama_to_f32.min(exact_to_f32) - 0.0005 {
                failures.push(format!(
                    "{ty:?} {backend:?} text {i}: cos(st_f32) {to_f32:.6} < llama.cpp's {llama_to_f32:.6} and the exact answer's {exact_to_f32:.6}, − 0.0005"
                ));
            }
        }
    }
    (failures, s)
}

fn check_type(ty: OutType) {
    let lines = lines(ty);
    let best = gemma_graph::backends::best_backend();
    let mut failures = Vec::new();
    let mut summaries = Vec::new();
    for precision in [Precision::Exact, Precision::Fast] {
        let (f, s) = run(ty, best, precision, &lines);
        failures.extend(f);
        summaries.push(s);
        for other in [Backend::Scalar, Backend::Avx2, Backend::Avx512, Backend::Neon] {
            if other == best || other.table().is_err() {
                continue;
            }
            let (f, _) = run(ty, other, precision, &lines[..OTHER_BACKEND_TEXTS]);
            failures.extend(f);
        }
    }
    let int8 = check_int8(ty, best, &lines, &mut failures);
    let llama_f32: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.llama.as_ref().map(|v| cosine(&f32s(v), &l.st_f32)))
        .collect();
    let llama_w: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.llama.as_ref().map(|v| cosine(&f32s(v), &l.st_w)))
        .collect();
    let (llama_f32, llama_w) = (MeanMin::of(&llama_f32), MeanMin::of(&llama_w));
    let size = std::fs::metadata(model_file(ty)).unwrap().len() as f64 / 1e6;
    let (exact, fast) = (&summaries[0], &summaries[1]);
    println!(
        "| {} | {size:.0} MB | {} | {} | {} | {} | {:.7} | {:.6} | {} | {} | {} of {} |",
        ty.name(),
        MeanMin::of(&fast.to_f32),
        MeanMin::of(&exact.to_f32),
        int8.map_or("—".into(), |(f, _)| f.to_string()),
        llama_f32,
        exact.min_w,
        fast.min_w,
        int8.map_or("—".into(), |(_, w)| w.to_string()),
        llama_w,
        fast.llama_nearer,
        llama_w.n,
    );
    // The per-type table `gemma-graph inspect` shows (cli/src/accuracy_by_type.csv).
    if let Some(path) = std::env::var_os("GEMMA_GRAPH_ACCURACY_CSV") {
        use std::io::Write as _;
        // Without int8 kernels on this CPU the int8 cells stay empty.
        let none = MeanMin::of(&[]);
        let (i8f, i8w) = int8.unwrap_or((none, none));
        let row = format!(
            "{},{:.0},{},{},{},{:.7},{:.7},{},{},{}\n",
            ty.name(),
            size,
            MeanMin::of(&fast.to_f32).csv(),
            MeanMin::of(&exact.to_f32).csv(),
            i8f.csv(),
            exact.min_w,
            fast.min_w,
            i8w.csv(),
            llama_f32.csv(),
            llama_w.csv(),
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(row.as_bytes()).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Mean and minimum of a set of cosines (NaN for an empty set).
#[derive(Clone, Copy)]
struct MeanMin {
    mean: f64,
    min: f64,
    n: usize,
}

impl MeanMin {
    fn of(v: &[f64]) -> MeanMin {
        MeanMin {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            n: v.len(),
        }
    }

    fn csv(self) -> String {
        if self.n == 0 {
            ",".into()
        } else {
            format!("{:.5},{:.5}", self.mean, self.min)
        }
    }
}

impl std::fmt::Display for MeanMin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.n == 0 {
            return f.write_str("—");
        }
        write!(f, "{:.5} / {:.5}", self.mean, self.min)
    }
}

/// The int8 precision (8-bit activations, as llama.cpp computes), where the best backend has
/// it, against llama.cpp's vectors on the same file: over the texts llama.cpp embedded, the
/// mean cosine with the exact answer `st_w` at least llama.cpp's mean less 0.0002, the worst
/// at least llama.cpp's worst less 0.001 (failures into `failures`). Returns the int8 vectors'
/// cosines with `st_f32` and with `st_w` over those texts.
fn check_int8(ty: OutType, best: Backend, lines: &[Line], failures: &mut Vec<String>) -> Option<(MeanMin, MeanMin)> {
    match best.table().map(|t| t.int8_available()) {
        Ok(Ok(())) => {}
        _ => {
            eprintln!(
                "{}: {best} has no int8 kernels on this CPU; int8 not checked",
                ty.name()
            );
            return None;
        }
    }
    // The texts with a llama.cpp vector (all of them for the types without one: F32, Q8_0,
    // whose int8 figures are reported, and held to llama.cpp by embeddings_golden.rs for Q8_0).
    let mut texts_of: Vec<&Line> = lines.iter().filter(|l| l.llama.is_some()).collect();
    if texts_of.is_empty() {
        texts_of = lines.iter().collect();
    }
    let opts = ModelOptions {
        backend: BackendChoice::Force(best),
        precision: Precision::Int8,
        ..Default::default()
    };
    let model = Model::load_with(model_file(ty), &opts, &SentenceTransformersHead).unwrap();
    let texts: Vec<&str> = texts_of.iter().map(|l| l.text.as_str()).collect();
    let out = model.embed(&texts, &EmbedOptions::default()).unwrap();
    let cosines = |to: fn(&Line) -> &[f64]| -> Vec<f64> {
        texts_of
            .iter()
            .enumerate()
            .map(|(i, l)| cosine(out.vector(i), to(l)))
            .collect()
    };
    let (to_w, to_f32) = (cosines(|l| &l.st_w), cosines(|l| &l.st_f32));
    let ours = MeanMin::of(&to_w);
    let llama: Vec<f64> = texts_of
        .iter()
        .filter_map(|l| l.llama.as_ref().map(|v| cosine(&f32s(v), &l.st_w)))
        .collect();
    if llama.is_empty() {
        println!("{} int8 on {best}: cos(st_w) {ours} ({} texts)", ty.name(), ours.n);
        return Some((MeanMin::of(&to_f32), ours));
    }
    let llama = MeanMin::of(&llama);
    println!(
        "{} int8 on {best}: cos(st_w) mean {:.6} min {:.6}; llama.cpp mean {:.6} min {:.6} ({} texts)",
        ty.name(),
        ours.mean,
        ours.min,
        llama.mean,
        llama.min,
        ours.n
    );
    if ours.mean < llama.mean - 0.0002 {
        failures.push(format!(
            "{ty:?} int8: mean cos(st_w) {:.6} < llama.cpp's {:.6} − 0.0002",
            ours.mean, llama.mean
        ));
    }
    if ours.min < llama.min - 0.001 {
        failures.push(format!(
            "{ty:?} int8: worst cos(st_w) {:.6} < llama.cpp's {:.6} − 0.001",
            ours.min, llama.min
        ));
    }
    Some((MeanMin::of(&to_f32), ours))
}

#[test]
fn f32_file() {
    check_type(OutType::F32);
}

/// Q8_0 (the fetched model's type; embeddings_golden.rs covers it on every text and backend):
/// here for its row of the per-type table.
#[test]
fn q8_0_file() {
    check_type(OutType::Q8_0);
}

#[test]
fn f16_file() {
    check_type(OutType::F16);
}

#[test]
fn bf16_file() {
    check_type(OutType::BF16);
}

#[test]
fn q4_0_file() {
    check_type(OutType::Q4_0);
}

#[test]
fn q4_1_file() {
    check_type(OutType::Q4_1);
}

#[test]
fn q5_0_file() {
    check_type(OutType::Q5_0);
}

#[test]
fn q5_1_file() {
    check_type(OutType::Q5_1);
}

#[test]
fn q4_k_m_file() {
    check_type(OutType::Q4KM);
}

#[test]
fn q5_k_m_file() {
    check_type(OutType::Q5KM);
}

#[test]
fn q6_k_file() {
    check_type(OutType::Q6K);
}

#[test]
fn iq4_nl_file() {
    check_type(OutType::IQ4NL);
}

#[test]
fn iq4_xs_file() {
    check_type(OutType::IQ4XS);
}

#[test]
fn q2_k_file() {
    check_type(OutType::Q2K);
}

#[test]
fn q3_k_s_file() {
    check_type(OutType::Q3KS);
}

#[test]
fn q3_k_m_file() {
    check_type(OutType::Q3KM);
}

#[test]
fn iq3_s_file() {
    check_type(OutType::IQ3S);
}

#[test]
fn iq3_m_file() {
    check_type(OutType::IQ3M);
}
