//! Tokenizer properties on the real vocabulary: decode(encode(s)) == s for arbitrary Unicode,
//! the options do what they say, truncation reports what it dropped, and pathological inputs
//! complete (their speed is measured in benches/tokenizer.rs).

use gg_testing as common;

use std::sync::OnceLock;

use common::*;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization, Tokenizer};

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_gguf(&Gguf::open(model_path()).unwrap()).unwrap())
}

use gemma_graph::ops::testing::XorShift as Rng;

/// A random string mixing ASCII, whitespace runs, Latin accents (composed and combining),
/// CJK, emoji, rare planes and control-token literals.
fn random_text(rng: &mut Rng) -> String {
    let len = rng.below(40) as u64;
    let mut s = String::new();
    for _ in 0..len {
        match rng.below(10) {
            0..=3 => s.push((b' ' + rng.below(95) as u8) as char),
            4 => s.push_str(["  ", "\n", "\n\n", "\t", "   ", "\r\n"][rng.below(6)]),
            5 => s.push_str(
                [
                    "<bos>",
                    "<eos>",
                    "<start_of_turn>",
                    "<unused7>",
                    "<0x41>",
                    "[multimodal]",
                ][rng.below(6)],
            ),
            _ => {
                let ranges: [(u32, u32); 6] = [
                    (0xa0, 0x250),
                    (0x300, 0x370),
                    (0x4e00, 0x9fff),
                    (0x1f300, 0x1faff),
                    (0x10000, 0x10ffff),
                    (0x0, 0x20),
                ];
                let (lo, hi) = ranges[rng.below(ranges.len())];
                let c = char::from_u32(lo + rng.below((hi - lo) as usize) as u32).unwrap_or('?');
                // U+2581 is how the vocabulary spells a space; it decodes to ' '.
                s.push(if c == '\u{2581}' { 'x' } else { c });
            }
        }
    }
    s
}

#[test]
fn decode_inverts_encode_on_arbitrary_unicode() {
    let t = tok();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for case in 0..3000 {
        let s = random_text(&mut rng);
        for control in [ControlLiterals::Special, ControlLiterals::PlainText] {
            let opts = EncodeOptions {
                control_literals: control,
                ..Default::default()
            };
            let ids = t.encode(&s, &opts).ids;
            assert_eq!(t.decode(&ids), s, "case {case} ({control:?}): ids {ids:?}");
        }
    }
}

#[test]
fn control_literals_option() {
    let t = tok();
    let special = t.encode("<start_of_turn>user", &EncodeOptions::default()).ids;
    assert_eq!(special[1], 105);
    let plain = t
        .encode(
            "<start_of_turn>user",
            &EncodeOptions {
                control_literals: ControlLiterals::PlainText,
                ..Default::default()
            },
        )
        .ids;
    assert!(!plain.contains(&105));
    assert!(
        plain[1..plain.len() - 1].iter().all(|&i| t.token_type(i) != Some(3)),
        "{plain:?}"
    );
}

#[test]
fn normalization_option_makes_accents_agree() {
    let t = tok();
    let composed = "café";
    let decomposed = "cafe\u{301}";
    let raw = EncodeOptions::default();
    assert_ne!(t.encode(composed, &raw).ids, t.encode(decomposed, &raw).ids);
    for normalization in [Normalization::Nfc, Normalization::Nfkc] {
        let o = EncodeOptions {
            normalization,
            ..Default::default()
        };
        assert_eq!(t.encode(composed, &o).ids, t.encode(decomposed, &o).ids);
    }
    let nfkc = EncodeOptions {
        normalization: Normalization::Nfkc,
        ..Default::default()
    };
    assert_eq!(t.encode("ﬁ", &nfkc).ids, t.encode("fi", &nfkc).ids);
}

#[test]
fn truncation_keeps_bos_head_eos_and_reports_dropped() {
    let t = tok();
    let text = "word ".repeat(3000);
    let full = t.encode(&text, &EncodeOptions::default());
    assert_eq!(full.dropped, 0);
    let cut = t.encode(
        &text,
        &EncodeOptions {
            max_tokens: Some(2048),
            ..Default::default()
        },
    );
    assert_eq!(cut.ids.len(), 2048);
    assert_eq!(cut.dropped, full.ids.len() - 2048);
    assert_eq!(cut.ids[..2047], full.ids[..2047]);
    assert_eq!(cut.ids[2047], t.eos());
    let short = t.encode(
        "hi",
        &EncodeOptions {
            max_tokens: Some(2048),
            ..Default::default()
        },
    );
    assert_eq!(short.dropped, 0);
}

#[test]
fn pathological_inputs_tokenize() {
    let t = tok();
    let o = EncodeOptions::default();
    let one_char = "a".repeat(100_000);
    let ids = t.encode(&one_char, &o).ids;
    assert_eq!(t.decode(&ids), one_char);
    let ab = "ab".repeat(50_000);
    assert_eq!(t.decode(&t.encode(&ab, &o).ids), ab);
    let no_spaces: String = (0..1_000_000u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    assert_eq!(t.decode(&t.encode(&no_spaces, &o).ids), no_spaces);
    let spaces = " ".repeat(100_000);
    assert_eq!(t.decode(&t.encode(&spaces, &o).ids), spaces);
}
