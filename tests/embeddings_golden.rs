//! Exactness on ../shared/golden/embeddings.jsonl, per backend and precision.
//! - `exact` (f32 activations): cosine with `st_q8w` (the exact answer for this Q8_0 file, up
//!   to summation order) ≥ 0.99999 for every text; hence cosine with `st_f32` ≥
//!   cos(st_q8w, st_f32) − 1e-5.
//! - `fast` (16-bit activation blocks, integer dot products): cosine with `st_q8w` ≥ 0.9999
//!   for every text.
//! - `int8` (8-bit activation blocks, as llama.cpp computes): as close to `st_q8w` as llama.cpp's
//!   vectors (`llama_q8_0`) are — every text's cosine at least llama.cpp's worst on the golden
//!   set less 0.0005, and the mean over the texts checked at least llama.cpp's mean over the
//!   same texts less 0.0002. Not text by text: two 8-bit quantizations of slightly different
//!   activations round differently, and which of the two lands nearer the exact answer on one
//!   text is luck (llama.cpp's is nearer on some texts by up to 0.0008, ours on others). On the
//!   avx512 tier with VNNI (all texts) and the scalar specification (the first 8 texts and
//!   text 60: its plain-Rust kernels are the slowest of all).
//!
//! The scalar backend runs both precisions on the first 24 texts plus text 60 (623 tokens: past
//! the 512-token sliding window, so the banded attention's edges run too): all 99 took 594 s
//! in `fast` and minutes in `exact`, which CI cannot afford. The SIMD tiers, which the parity
//! tests tie to the scalar specification (bit for bit in `fast`), run both on every text. `llama_q8_0` is reported for
//! comparison, not required. Run with --nocapture for the numbers.

use gg_testing as common;

use common::*;
use gemma_graph::{Backend, BackendChoice, EmbedOptions, Model, ModelOptions, Precision, SentenceTransformersHead};

#[test]
fn scalar_backend_matches_references() {
    check_backend(Backend::Scalar, Precision::Exact, Texts::FirstAndPastWindow(24));
}

/// Which golden texts a check runs.
#[derive(Clone, Copy)]
enum Texts {
    All,
    First(usize),
    /// The scalar backend's subsets (see the module docs): the first `n` texts (short ones) and
    /// text 60, past the sliding window.
    FirstAndPastWindow(usize),
}

#[test]
fn scalar_backend_fast_precision_matches_references() {
    check_backend(Backend::Scalar, Precision::Fast, Texts::FirstAndPastWindow(24));
}

#[test]
fn scalar_backend_int8_precision_matches_references() {
    check_backend(Backend::Scalar, Precision::Int8, Texts::FirstAndPastWindow(8));
}

/// A tier's int8 precision on every golden text, where this CPU runs it.
fn check_int8(backend: Backend) {
    match backend.table() {
        Err(e) => eprintln!("skipping: {e}"),
        Ok(t) => match t.int8_available() {
            Err(Some(f)) => eprintln!("skipping: {backend}'s int8 kernels need {f}, which this CPU lacks"),
            Err(None) => panic!("{backend} has no int8 kernels"),
            Ok(()) => check_backend(backend, Precision::Int8, Texts::All),
        },
    }
}

#[test]
fn avx512_backend_int8_precision_matches_references() {
    check_int8(Backend::Avx512);
}

#[test]
fn avx2_backend_refuses_the_int8_precision() {
    // With AVX-VNNI its int8 passes missed the int8 bar on the golden texts
    // (see `Avx2Tier::INT8`): the tier says so instead of answering worse.
    let Ok(t) = Backend::Avx2.table() else {
        return eprintln!("skipping: this CPU has no AVX2/FMA/F16C");
    };
    assert_eq!(t.int8_available(), Err(None), "the AVX2 tier offers no int8 precision");
}

#[test]
fn amx_backend_matches_references() {
    // The matrix engine: the fast and int8 precisions' matmuls on tiles (the exact precision is
    // the AVX-512 tier's, run by its own test).
    if let Err(e) = Backend::Amx.table() {
        eprintln!("skipping: {e}");
        return;
    }
    check_backend(Backend::Amx, Precision::Fast, Texts::All);
    check_int8(Backend::Amx);
}

#[test]
fn avx2_backend_matches_references() {
    if !Backend::Avx2.is_available() {
        eprintln!("skipping: this CPU has no AVX2/FMA/F16C");
        return;
    }
    check_backend(Backend::Avx2, Precision::Exact, Texts::All);
    check_backend(Backend::Avx2, Precision::Fast, Texts::All);
}

#[test]
fn avx512_backend_matches_references() {
    if let Err(e) = Backend::Avx512.table() {
        eprintln!("skipping: {e}");
        return;
    }
    check_backend(Backend::Avx512, Precision::Exact, Texts::All);
    check_backend(Backend::Avx512, Precision::Fast, Texts::All);
}

#[test]
fn neon_backend_matches_references() {
    if let Err(e) = Backend::Neon.table() {
        eprintln!("skipping: {e}");
        return;
    }
    // Under emulation (CI runs this with qemu-aarch64) the first texts only: GEMMA_GRAPH_GOLDEN_LIMIT.
    let limit = std::env::var("GEMMA_GRAPH_GOLDEN_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    check_backend(Backend::Neon, Precision::Fast, Texts::First(limit));
    check_backend(Backend::Neon, Precision::Exact, Texts::First(limit));
}

fn check_backend(backend: Backend, precision: Precision, which: Texts) {
    let opts = ModelOptions {
        backend: BackendChoice::Force(backend),
        precision,
        ..Default::default()
    };
    let model = Model::load_with(model_path(), &opts, &SentenceTransformersHead).unwrap();
    let mut lines = read_jsonl(&golden_file("embeddings.jsonl"));
    // llama.cpp's worst cosine with the exact answer over the whole golden set.
    let llama_worst = lines
        .iter()
        .filter_map(|l| {
            let v: Vec<f32> = vec_of(&l["llama_q8_0"])?.iter().map(|&x| x as f32).collect();
            Some(cosine(&v, &vec_of(&l["st_q8w"]).unwrap()))
        })
        .fold(f64::INFINITY, f64::min);
    match which {
        Texts::All => {}
        Texts::First(n) => lines.truncate(n),
        Texts::FirstAndPastWindow(n) => {
            lines = lines
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i < n || *i == 60)
                .map(|(_, l)| l)
                .collect();
        }
    }
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let out = model.embed(&texts, &EmbedOptions::default()).unwrap();

    let (mut min_q8w, mut sum_q8w) = (f64::INFINITY, 0.0);
    let mut int8_means = (0.0, 0.0);
    let (mut min_f32, mut sum_f32) = (f64::INFINITY, 0.0);
    let (mut min_llama, mut sum_llama, mut n_llama) = (f64::INFINITY, 0.0, 0);
    let mut failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let ours = out.vector(i);
        let want_ids: Vec<u64> = line["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(out.items[i].tokens, want_ids.len(), "{}: token count", line["id"]);
        let q8w = vec_of(&line["st_q8w"]).unwrap();
        let f32v = vec_of(&line["st_f32"]).unwrap();
        let c_q8w = cosine(ours, &q8w);
        let c_f32 = cosine(ours, &f32v);
        let ref_gap: f64 = {
            let q: Vec<f32> = q8w.iter().map(|&x| x as f32).collect();
            cosine(&q, &f32v)
        };
        min_q8w = min_q8w.min(c_q8w);
        sum_q8w += c_q8w;
        min_f32 = min_f32.min(c_f32);
        sum_f32 += c_f32;
        let llama = vec_of(&line["llama_q8_0"]);
        if let Some(l) = &llama {
            let c = cosine(ours, l);
            min_llama = min_llama.min(c);
            sum_llama += c;
            n_llama += 1;
        }
        // llama.cpp's own distance from the exact answer, for the int8 bar.
        let llama_q8w = llama.as_ref().map(|l| {
            let l: Vec<f32> = l.iter().map(|&x| x as f32).collect();
            cosine(&l, &q8w)
        });
        if let Some(c) = llama_q8w {
            // Both means over the texts llama.cpp embedded (it refuses one past its context).
            int8_means.0 += c_q8w;
            int8_means.1 += c;
        }
        let off = match precision {
            Precision::Exact => c_q8w < 0.99999 || c_f32 < ref_gap - 0.00001,
            Precision::Fast => c_q8w < 0.9999,
            Precision::Int8 => c_q8w < llama_worst - 0.0005,
        };
        if off {
            failures.push(format!(
                "{}: cos(st_q8w) {c_q8w:.6}, cos(st_f32) {c_f32:.6} (reference gap {ref_gap:.6}; llama.cpp's cos(st_q8w) {:.6})",
                line["id"],
                llama_q8w.unwrap_or(f64::NAN)
            ));
        }
    }
    let n = lines.len() as f64;
    if precision == Precision::Int8 {
        let (ours, llama) = (int8_means.0 / n_llama as f64, int8_means.1 / n_llama as f64);
        println!("int8: mean cos vs st_q8w {ours:.7}, llama.cpp's {llama:.7}; llama.cpp's worst {llama_worst:.7}");
        if ours < llama - 0.0002 {
            failures.push(format!(
                "mean cos(st_q8w) {ours:.7} below llama.cpp's {llama:.7} less 0.0002"
            ));
        }
    }
    println!("backend {backend}, precision {precision}, texts: {}", lines.len());
    println!("cos vs st_q8w:     min {min_q8w:.7} mean {:.7}", sum_q8w / n);
    println!("cos vs st_f32:     min {min_f32:.7} mean {:.7}", sum_f32 / n);
    println!(
        "cos vs llama_q8_0: min {min_llama:.7} mean {:.7} ({n_llama} texts)",
        sum_llama / n_llama as f64
    );
    assert!(
        failures.is_empty(),
        "{} texts off:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
