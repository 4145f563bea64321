//! The library API on a tiny random model: loading rules and errors, batching equivalence,
//! input order, prompts, Matryoshka, cancellation, deadlines, sharing across threads.

use gg_testing as common;

use std::time::Instant;

use common::tiny::{tiny_model_file, TinySpec};
use gemma_graph::{
    CancelToken, EmbedOptions, Error, Input, Model, ModelOptions, Precision, Prompt, SentenceTransformersHead,
    Truncation,
};

fn tiny(tag: &str) -> Model {
    Model::load(tiny_model_file(tag, &TinySpec::default())).unwrap()
}

const TEXTS: &[&str] = &[
    "the world",
    "hello there, this is a somewhat longer text that spans past the sliding window of the tiny model",
    "",
    "a",
    "another world of words and worlds",
    "  spaced   out  ",
];

#[test]
fn loads_and_embeds_unit_vectors() {
    let m = tiny("basic");
    assert!(m.warnings().is_empty());
    let out = m.embed(TEXTS, &EmbedOptions::default()).unwrap();
    assert_eq!(out.len(), TEXTS.len());
    for i in 0..out.len() {
        let v = out.vector(i);
        assert_eq!(v.len(), 64);
        let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "text {i} norm {n}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
    assert_eq!(out.items[2].tokens, 2, "empty text is BOS + EOS");
}

#[test]
fn text_alone_equals_text_in_any_batch() {
    let m = tiny("batching");
    let all = m.embed(TEXTS, &EmbedOptions::default()).unwrap();
    for budget in [12, 40, 128] {
        let opts = EmbedOptions {
            batch_tokens: Some(budget),
            ..Default::default()
        };
        let batched = m.embed(TEXTS, &opts).unwrap();
        for (i, t) in TEXTS.iter().enumerate() {
            let alone = m.embed(&[t], &opts).unwrap();
            for (a, b) in [(alone.vector(0), all.vector(i)), (batched.vector(i), all.vector(i))] {
                let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                assert!(diff <= 1e-6, "text {i}, budget {budget}: max abs diff {diff}");
            }
        }
    }
    // Reversed input gives reversed output.
    let rev: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let out = m.embed(&rev, &EmbedOptions::default()).unwrap();
    for i in 0..TEXTS.len() {
        assert_eq!(out.vector(i), all.vector(TEXTS.len() - 1 - i));
    }
}

#[test]
fn prompts_and_matryoshka() {
    let m = tiny("prompts");
    let plain = m
        .embed(&["task: search result | query: the world"], &EmbedOptions::default())
        .unwrap();
    let named = m
        .embed(
            &["the world"],
            &EmbedOptions {
                prompt: Some(Prompt::Name("query".into())),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(plain.vector(0), named.vector(0));
    let bad = m.embed(
        &["x"],
        &EmbedOptions {
            prompt: Some(Prompt::Name("nope".into())),
            ..Default::default()
        },
    );
    assert!(matches!(bad, Err(Error::InvalidOption(ref s)) if s.contains("nope") && s.contains("document")));

    let full = m.embed(&["the world"], &EmbedOptions::default()).unwrap();
    let short = m
        .embed(
            &["the world"],
            &EmbedOptions {
                dim: Some(16),
                ..Default::default()
            },
        )
        .unwrap();
    let v = short.vector(0);
    assert_eq!(v.len(), 16);
    let n: f32 = full.vector(0)[..16].iter().map(|x| x * x).sum::<f32>().sqrt();
    for (a, b) in v.iter().zip(&full.vector(0)[..16]) {
        assert!((a - b / n).abs() < 1e-6);
    }
    assert!(m
        .embed(
            &["x"],
            &EmbedOptions {
                dim: Some(65),
                ..Default::default()
            }
        )
        .is_err());
}

#[test]
fn long_texts_truncate_or_error() {
    let m = tiny("long");
    let long = "the world ".repeat(200);
    let out = m.embed(&[long.as_str()], &EmbedOptions::default()).unwrap();
    assert_eq!(out.items[0].tokens, 128, "truncated to the context");
    assert!(out.items[0].dropped_tokens > 0);
    let small = Model::load_with(
        tiny_model_file("long-small", &TinySpec::default()),
        &ModelOptions {
            max_batch_tokens: 32,
            ..Default::default()
        },
        &SentenceTransformersHead,
    )
    .unwrap();
    match small.embed(&["ok", long.as_str()], &EmbedOptions::default()) {
        Err(Error::TextTooLong {
            index: 1,
            tokens: 128,
            max: 32,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn inputs_become_sequences_by_one_set_of_rules() {
    // Texts and token arrays, both truncation sides and refusal: what every surface (CLI, server,
    // Python) gets from `Model::sequencer`.
    let m = tiny("inputs");
    let tok = m.tokenizer();
    let (bos, eos) = (tok.bos(), tok.eos());
    let long = "the world ".repeat(200);
    let rules = |truncation| EmbedOptions {
        truncation,
        ..Default::default()
    };
    let defaults = EmbedOptions::default();
    let full = m.sequencer(&defaults).unwrap();
    let all = {
        let mut r = full;
        r.context = None;
        r.sequence(0, Input::Text(&long)).unwrap().ids
    };
    assert!(all.len() > 128 && all[0] == bos && all[all.len() - 1] == eos);
    let body = &all[1..all.len() - 1];
    let right = m
        .sequencer(&rules(Truncation::Right))
        .unwrap()
        .sequence(0, Input::Text(&long))
        .unwrap();
    assert_eq!(right.ids.len(), 128);
    assert_eq!(right.dropped, all.len() - 128);
    assert_eq!(&right.ids[1..127], &body[..126], "the start kept");
    assert_eq!((right.ids[0], right.ids[127]), (bos, eos));
    let left = m
        .sequencer(&rules(Truncation::Left))
        .unwrap()
        .sequence(0, Input::Text(&long))
        .unwrap();
    assert_eq!(&left.ids[1..127], &body[body.len() - 126..], "the end kept");
    assert_eq!((left.ids[0], left.ids[127], left.dropped), (bos, eos, right.dropped));
    match m.embed(&["ok", long.as_str()], &rules(Truncation::Error)) {
        Err(Error::WouldTruncate { index: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Right truncation is the tokenizer's own (what embedding always did).
    let enc = tok.encode(
        &long,
        &gemma_graph::EncodeOptions {
            max_tokens: Some(128),
            ..Default::default()
        },
    );
    assert_eq!((enc.ids, enc.dropped), (right.ids.clone(), right.dropped));

    // Token arrays: wrapped in BOS/EOS unless already, truncated by the same rule, checked.
    let ids = &all[1..11];
    let wrapped = [&[bos][..], ids, &[eos]].concat();
    let seqs = full
        .sequences([Input::Tokens(ids), Input::Tokens(&wrapped), Input::Tokens(&all[..11])])
        .unwrap();
    assert_eq!(seqs[0].ids, wrapped);
    assert_eq!(seqs[1].ids, wrapped, "already wrapped: as it is");
    assert_eq!(
        seqs[2].ids,
        [&[bos][..], &all[..11], &[eos]].concat(),
        "BOS without EOS: wrapped"
    );
    let tokens_left = m
        .sequencer(&rules(Truncation::Left))
        .unwrap()
        .sequence(0, Input::Tokens(body))
        .unwrap();
    assert_eq!(tokens_left, left, "a token array truncates as its text does");
    match full.sequence(3, Input::Tokens(&[5, 1 << 30])) {
        Err(Error::TokenOutOfVocabulary { index: 3, id, .. }) => assert_eq!(id, 1 << 30),
        other => panic!("{other:?}"),
    }
    let prompted = EmbedOptions {
        prompt: Some(Prompt::Name("query".into())),
        ..Default::default()
    };
    assert!(m.sequencer(&prompted).unwrap().sequence(0, Input::Tokens(ids)).is_err());
    // Embedding a text equals embedding its sequence's tokens.
    let a = m.embed(&["the world"], &EmbedOptions::default()).unwrap();
    let s = full.sequence(0, Input::Text("the world")).unwrap();
    let b = m
        .embed_inputs([Input::Tokens(&s.ids)], &EmbedOptions::default())
        .unwrap();
    assert_eq!(a.vector(0), b.vector(0));
}

#[test]
fn cancellation_and_deadline_return_partial_results() {
    let m = tiny("cancel");
    let texts: Vec<String> = (0..50).map(|i| format!("text number {i}")).collect();
    let token = CancelToken::new();
    token.cancel();
    let opts = EmbedOptions {
        cancel: Some(token),
        ..Default::default()
    };
    match m.embed(&texts, &opts) {
        Err(Error::Cancelled { done, total: 50 }) => assert_eq!(done.len(), 0),
        other => panic!("{other:?}"),
    }
    let opts = EmbedOptions {
        deadline: Some(Instant::now()),
        batch_tokens: Some(16),
        ..Default::default()
    };
    match m.embed(&texts, &opts) {
        Err(e @ Error::DeadlineExceeded { .. }) => assert!(e.to_string().contains("of 50 texts")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shared_across_threads() {
    let m = tiny("threads");
    let want = m.embed(TEXTS, &EmbedOptions::default()).unwrap();
    let one = m
        .embed(
            TEXTS,
            &EmbedOptions {
                threads: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(one, want, "thread count does not change results");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(m.embed(TEXTS, &EmbedOptions::default()).unwrap(), want);
                }
            });
        }
    });
}

#[test]
fn missing_dense_heads_load_with_a_warning() {
    let path = tiny_model_file(
        "nodense",
        &TinySpec {
            dense: false,
            ..Default::default()
        },
    );
    let m = Model::load(path).unwrap();
    assert_eq!(m.warnings().len(), 1);
    assert!(m.warnings()[0].contains("dense"));
    assert_eq!(m.embed(&["x"], &EmbedOptions::default()).unwrap().vector(0).len(), 64);
}

#[test]
fn unsupported_architecture_and_missing_tensor_are_named() {
    let path = tiny_model_file(
        "arch",
        &TinySpec {
            arch: "llama",
            ..Default::default()
        },
    );
    let e = Model::load(&path).err().unwrap().to_string();
    assert!(e.contains("general.architecture") && e.contains("llama"), "{e}");
    let path = tiny_model_file(
        "missing",
        &TinySpec {
            skip: vec!["blk.3.ffn_up.weight".into()],
            ..Default::default()
        },
    );
    let e = Model::load(&path).err().unwrap().to_string();
    assert!(e.contains("blk.3.ffn_up.weight") && e.contains("missing"), "{e}");
}

#[test]
fn without_mmap_a_truncated_file_cannot_crash_a_loaded_model() {
    let path = tiny_model_file("no-mmap", &TinySpec::default());
    let options = ModelOptions {
        mmap: false,
        ..Default::default()
    };
    let model = Model::load_with(&path, &options, &SentenceTransformersHead).unwrap();
    let before = model.embed(&["the world"], &EmbedOptions::default()).unwrap();
    // Truncating a memory-mapped file under a running model raises SIGBUS; read into memory,
    // the model does not depend on the file any more.
    std::fs::File::create(&path).unwrap().set_len(0).unwrap();
    let after = model.embed(&["the world"], &EmbedOptions::default()).unwrap();
    assert_eq!(before, after);
    let mapped = Model::load(&path)
        .err()
        .expect("the truncated file no longer loads")
        .to_string();
    assert!(mapped.contains("no-mmap"), "{mapped}");
    std::fs::remove_file(path).ok();
}

#[test]
fn profile_sums_time_per_kernel_and_layer() {
    let model = tiny("profile");
    let profile = model.new_profile();
    let opts = EmbedOptions {
        profile: Some(profile.clone()),
        batch_tokens: Some(8),
        ..Default::default()
    };
    let texts = ["the world", "the the world world", "a"];
    let profiled = model.embed(&texts, &opts).unwrap();
    // Timing changes nothing in the vectors.
    assert_eq!(profiled, model.embed(&texts, &EmbedOptions::default()).unwrap());
    let report = model.profile_report(&profile);
    assert!(report.contains("forward passes"), "{report}");
    assert!(!report.starts_with("profile: 0 forward"), "{report}");
    for needle in ["attention", "matmul", "layer 0", "layer 6"] {
        assert!(report.contains(needle), "{needle:?} missing from\n{report}");
    }
}

#[test]
fn chunks_tile_the_text_on_token_boundaries() {
    use gemma_graph::ChunkOptions;
    let model = tiny("chunks");
    let opts = EmbedOptions::default();
    let c = |tokens, overlap| ChunkOptions { tokens, overlap };
    // Empty and short texts: one chunk.
    assert_eq!(model.chunk_text("", c(8, 2), &opts).unwrap().len(), 1);
    let short = model.chunk_text("the world", c(8, 2), &opts).unwrap();
    assert_eq!(
        (short.len(), short[0].bytes.clone(), short[0].chars.clone()),
        (1, 0..9, 0..9)
    );
    // Non-ASCII characters are byte-fallback tokens in the tiny vocabulary: a window edge
    // inside one takes the whole character, so every chunk is valid text.
    let text = "é the wörld ünïcode ☃ the world ".repeat(6);
    let chunks = model.chunk_text(&text, c(10, 3), &opts).unwrap();
    assert!(chunks.len() > 5);
    let chars: Vec<char> = text.chars().collect();
    for (i, ch) in chunks.iter().enumerate() {
        let by_chars: String = chars[ch.chars.clone()].iter().collect();
        assert_eq!(ch.text(&text), by_chars, "chunk {i}: byte and char ranges agree");
        assert_eq!(ch.text(&text), ch.text(&text).trim());
        if i > 0 {
            assert!(ch.bytes.start >= chunks[i - 1].bytes.start && ch.bytes.start < chunks[i - 1].bytes.end);
        }
    }
    assert_eq!(chunks[0].bytes.start, 0);
    assert_eq!(chunks.last().unwrap().bytes.end, text.trim_end().len());
    // Bad sizes, and windows that cannot fit the context with the prompt.
    assert!(matches!(
        model.chunk_text("x", c(0, 0), &opts),
        Err(Error::BadOption {
            option: "chunk_tokens",
            ..
        })
    ));
    assert!(matches!(
        model.chunk_text("x", c(4, 4), &opts),
        Err(Error::BadOption {
            option: "chunk_overlap",
            ..
        })
    ));
    let prompted = EmbedOptions {
        prompt: Some(Prompt::Text("a long prompt ".repeat(10))),
        ..Default::default()
    };
    let e = model.chunk_text("x", c(100, 0), &prompted).unwrap_err().to_string();
    assert!(e.contains("do not fit the 128-token context"), "{e}");
}

#[test]
fn batch_texts_and_truncation_options() {
    use gemma_graph::{PassLog, Truncation};
    let model = tiny("batch-texts");
    let texts = ["the world", "rain on the other", "tea", "an other win"];
    let log = PassLog::new();
    let one_each = EmbedOptions {
        batch_texts: Some(1),
        passes: Some(log.clone()),
        ..Default::default()
    };
    let a = model.embed(&texts, &one_each).unwrap();
    let passes = log.take();
    assert_eq!(passes.len(), 4);
    assert!(passes.iter().all(|p| p.texts == 1 && p.seconds >= 0.0));
    assert_eq!(
        passes.iter().map(|p| p.tokens).sum::<usize>(),
        a.items.iter().map(|i| i.tokens).sum::<usize>()
    );
    let b = model.embed(&texts, &EmbedOptions::default()).unwrap();
    for i in 0..texts.len() {
        let diff = a
            .vector(i)
            .iter()
            .zip(b.vector(i))
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-6);
    }
    let too_many = EmbedOptions {
        batch_texts: Some(100_000),
        ..Default::default()
    };
    assert!(matches!(
        model.embed(&texts, &too_many),
        Err(Error::BadOption {
            option: "batch_texts",
            ..
        })
    ));
    let long = "the world ".repeat(100);
    let strict = EmbedOptions {
        truncation: Truncation::Error,
        ..Default::default()
    };
    match model.embed(&["fine", long.as_str()], &strict) {
        Err(Error::WouldTruncate {
            index: 1,
            tokens,
            context: 128,
        }) => assert!(tokens > 128),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fast_precision_repacks_and_releases_its_weights() {
    let path = tiny_model_file("precision", &TinySpec::default());
    let load = |precision| {
        let o = ModelOptions {
            precision,
            ..Default::default()
        };
        Model::load_with(&path, &o, &SentenceTransformersHead).unwrap()
    };
    let (fast, exact) = (load(Precision::Fast), load(Precision::Exact));
    assert_eq!(
        (fast.precision(), exact.precision()),
        (Precision::Fast, Precision::Exact)
    );
    let p = fast.prepared();
    // Every layer's q|k|v, output, gate|up and down matrices are Q8_0 and repacked; their
    // originals (concatenations freed, file pages released) are let go of.
    assert!(p.weights >= 4 && p.bytes > 0 && p.released > 0, "{p:?}");
    assert_eq!(exact.prepared().weights, 0);
    let (a, b) = (
        fast.embed(&["the world"], &EmbedOptions::default()).unwrap(),
        exact.embed(&["the world"], &EmbedOptions::default()).unwrap(),
    );
    let cos: f32 = a.vector(0).iter().zip(b.vector(0)).map(|(x, y)| x * y).sum();
    assert!(cos > 0.9999, "fast vs exact cosine {cos}");
    assert_ne!(a.vector(0), b.vector(0), "the two precisions compute differently");
}
