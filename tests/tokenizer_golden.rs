//! Exactness: every text of ../shared/golden/tokens.jsonl (edge cases, ~100 languages, code,
//! 2,048-token truncation) tokenizes to exactly the reference ids.

use gg_testing as common;

use common::*;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{EncodeOptions, Tokenizer};

fn pieces(t: &Tokenizer, ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| format!("{:?}", t.piece(i).unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn all_golden_texts_tokenize_exactly() {
    let g = Gguf::open(model_path()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let opts = EncodeOptions {
        max_tokens: Some(2048),
        ..EncodeOptions::default()
    };
    let lines = read_jsonl(&golden_file("tokens.jsonl"));
    assert!(lines.len() >= 9000, "only {} golden texts", lines.len());
    let mut failures = Vec::new();
    for line in &lines {
        let text = line["text"].as_str().unwrap();
        let want: Vec<u32> = line["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, &opts).ids;
        if got != want {
            failures.push((line["id"].clone(), text, want, got));
        }
    }
    if !failures.is_empty() {
        let mut msg = format!("{} / {} texts differ; first ones:\n", failures.len(), lines.len());
        for (id, text, want, got) in failures.iter().take(8) {
            let first = want
                .iter()
                .zip(got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            let from = first.saturating_sub(3);
            let excerpt: String = text.chars().take(80).collect();
            msg += &format!(
                "- id {id}: {excerpt:?}\n  first difference at token {first} (lengths {} vs {})\n  want: {}\n  got:  {}\n",
                want.len(),
                got.len(),
                pieces(&tok, &want[from..(first + 4).min(want.len())]),
                pieces(&tok, &got[from..(first + 4).min(got.len())]),
            );
        }
        panic!("{msg}");
    }
}

/// Chunking relies on every token covering a known byte range of the text: on every golden
/// text the spans tile the text exactly, and each normal piece spells its bytes.
#[test]
fn token_spans_tile_every_golden_text() {
    let g = Gguf::open(model_path()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let opts = EncodeOptions {
        add_special: false,
        ..EncodeOptions::default()
    };
    let lines = read_jsonl(&golden_file("tokens.jsonl"));
    let mut checked = 0;
    for line in &lines {
        let text = line["text"].as_str().unwrap();
        let ids = tok.encode(text, &opts).ids;
        let spans = tok.token_spans(text, &ids).unwrap_or_else(|| {
            panic!(
                "id {}: tokens do not spell {:?}",
                line["id"],
                text.chars().take(60).collect::<String>()
            )
        });
        assert_eq!(spans.len(), ids.len());
        let mut at = 0;
        for s in &spans {
            assert_eq!(s.start, at, "id {}: spans are contiguous", line["id"]);
            assert!(s.end > s.start);
            at = s.end;
        }
        assert_eq!(at, text.len());
        checked += 1;
    }
    assert!(checked >= 9000);
    // Spans of ids that do not spell the text are refused.
    let ids = tok.encode("hello world", &opts).ids;
    assert!(tok.token_spans("hello there", &ids).is_none());
    assert!(tok.token_spans("hello world!", &ids).is_none());
}
