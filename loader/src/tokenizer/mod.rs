//! Gemma 3 SentencePiece (BPE) tokenizer, built from the GGUF's `tokenizer.ggml.*` keys.
//!
//! Encoding reproduces the model's own tokenizer (HF `tokenizers` as sentence-transformers
//! runs it): identity normalization, spaces as `▁`, no dummy prefix, no pre-splitting;
//! control and user-defined pieces matched whole (leftmost-longest) in the raw text; the rest
//! merged by piece score, with `<0xXX>` byte fallback; BOS/EOS added and long inputs truncated
//! to BOS + first n−2 + EOS.

mod bpe;
mod vocab;

use std::cell::RefCell;

use unicode_normalization::UnicodeNormalization;

use crate::gguf::{Gguf, GgufError};
pub use vocab::token_type;
use vocab::Vocab;

/// What to do with control-token text (`<bos>`, `<start_of_turn>`, ...) found in the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ControlLiterals {
    /// Turn it into the control id, as the reference tokenizers do (default).
    #[default]
    Special,
    /// Tokenize it as plain text (for untrusted input). Changes ids relative to the reference.
    PlainText,
}

/// Unicode normalization applied before tokenizing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalization {
    /// None, as the reference does (default): composed and decomposed accents differ.
    #[default]
    Identity,
    /// NFC first. Changes ids relative to the reference for decomposed input.
    Nfc,
    /// NFKC first. Changes ids relative to the reference for compatibility characters too.
    Nfkc,
}

/// Options of [`Tokenizer::encode`]. The default reproduces the reference tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    pub control_literals: ControlLiterals,
    pub normalization: Normalization,
    /// Add BOS/EOS as the model's metadata says (`add_bos_token`, `add_eos_token`).
    pub add_special: bool,
    /// Keep at most this many ids (specials included), as BOS + first n−2 + EOS.
    /// `None`: no truncation.
    pub max_tokens: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            control_literals: ControlLiterals::Special,
            normalization: Normalization::Identity,
            add_special: true,
            max_tokens: None,
        }
    }
}

/// Ids of one text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// How many ids truncation dropped (0 when the text fit).
    pub dropped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer.ggml.model is {0:?}; only SentencePiece (\"llama\") vocabularies are supported")]
    UnsupportedModel(String),
    #[error("tokenizer arrays disagree in length: {tokens} tokens, {scores} scores, {types} token types")]
    LengthMismatch { tokens: usize, scores: usize, types: usize },
    #[error("{key} = {id} is outside the vocabulary of {n} pieces")]
    IdOutOfRange { key: &'static str, id: u32, n: usize },
}

#[derive(Default)]
struct Scratch {
    normalized: String,
    fragment: String,
    bpe: bpe::BpeScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A SentencePiece BPE tokenizer.
pub struct Tokenizer {
    vocab: Vocab,
    bos: u32,
    eos: u32,
    add_bos: bool,
    add_eos: bool,
}

impl Tokenizer {
    /// Build from GGUF metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let model = g.str("tokenizer.ggml.model")?;
        if model != "llama" {
            return Err(TokenizerError::UnsupportedModel(model.to_string()));
        }
        let tokens: Vec<String> = g
            .strings("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let n = tokens.len();
        let scores = match g.get("tokenizer.ggml.scores") {
            Some(_) => g.f32s("tokenizer.ggml.scores")?,
            None => vec![0.0; n],
        };
        let types = match g.get("tokenizer.ggml.token_type") {
            Some(_) => g.i32s("tokenizer.ggml.token_type")?,
            None => vec![token_type::NORMAL; n],
        };
        if scores.len() != n || types.len() != n {
            return Err(TokenizerError::LengthMismatch {
                tokens: n,
                scores: scores.len(),
                types: types.len(),
            });
        }
        let id = |key: &'static str, default: u32| -> Result<u32, TokenizerError> {
            let id = match g.get(key) {
                Some(_) => g.u32(key)?,
                None => default,
            };
            if id as usize >= n {
                return Err(TokenizerError::IdOutOfRange { key, id, n });
            }
            Ok(id)
        };
        let flag = |key: &str, default: bool| match g.get(key) {
            Some(_) => g.bool(key),
            None => Ok(default),
        };
        let bos = id("tokenizer.ggml.bos_token_id", 2)?;
        let eos = id("tokenizer.ggml.eos_token_id", 1)?;
        let unk = id("tokenizer.ggml.unknown_token_id", 3)?;
        Ok(Tokenizer {
            vocab: Vocab::new(tokens, scores, types, unk),
            bos,
            eos,
            add_bos: flag("tokenizer.ggml.add_bos_token", true)?,
            add_eos: flag("tokenizer.ggml.add_eos_token", true)?,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.pieces.len()
    }

    pub fn bos(&self) -> u32 {
        self.bos
    }

    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The piece text of an id.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.vocab.pieces.get(id as usize).map(String::as_str)
    }

    /// The token type of an id (see [`token_type`]).
    pub fn token_type(&self, id: u32) -> Option<i32> {
        self.vocab.types.get(id as usize).copied()
    }

    /// How many special ids `encode` adds.
    pub fn n_special(&self, opts: &EncodeOptions) -> usize {
        if opts.add_special {
            usize::from(self.add_bos) + usize::from(self.add_eos)
        } else {
            0
        }
    }

    /// Encode one text.
    pub fn encode(&self, text: &str, opts: &EncodeOptions) -> Encoding {
        let mut ids = Vec::new();
        let dropped = self.encode_into(text, opts, &mut ids);
        Encoding { ids, dropped }
    }

    /// Encode one text, appending to `out`; returns how many ids truncation dropped.
    pub fn encode_into(&self, text: &str, opts: &EncodeOptions, out: &mut Vec<u32>) -> usize {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let s = &mut *s;
            let text = match opts.normalization {
                Normalization::Identity => text,
                Normalization::Nfc => {
                    s.normalized.clear();
                    s.normalized.extend(text.nfc());
                    s.normalized.as_str()
                }
                Normalization::Nfkc => {
                    s.normalized.clear();
                    s.normalized.extend(text.nfkc());
                    s.normalized.as_str()
                }
            };
            let start = out.len();
            let add_bos = opts.add_special && self.add_bos;
            let add_eos = opts.add_special && self.add_eos;
            if add_bos {
                out.push(self.bos);
            }
            self.encode_text(text, opts.control_literals, &mut s.fragment, &mut s.bpe, out);
            let mut dropped = 0;
            if let Some(max) = opts.max_tokens {
                let limit = max.saturating_sub(usize::from(add_eos)).max(usize::from(add_bos));
                let len = out.len() - start;
                if len > limit {
                    dropped = len - limit;
                    out.truncate(start + limit);
                }
            }
            if add_eos {
                out.push(self.eos);
            }
            dropped
        })
    }

    /// Split on whole-matched pieces, BPE the text between them.
    fn encode_text(
        &self,
        text: &str,
        control: ControlLiterals,
        fragment: &mut String,
        bpe: &mut bpe::BpeScratch,
        out: &mut Vec<u32>,
    ) {
        let bytes = text.as_bytes();
        let keep =
            |id: u32| control == ControlLiterals::Special || self.vocab.types[id as usize] != token_type::CONTROL;
        let mut plain_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.vocab.whole.starts(bytes[i]) {
                if let Some((id, len)) = self.vocab.whole.longest(&bytes[i..], keep) {
                    self.encode_plain(&text[plain_start..i], fragment, bpe, out);
                    out.push(id);
                    i += len;
                    plain_start = i;
                    continue;
                }
            }
            i += 1;
        }
        self.encode_plain(&text[plain_start..], fragment, bpe, out);
    }

    fn encode_plain(&self, text: &str, fragment: &mut String, bpe: &mut bpe::BpeScratch, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        fragment.clear();
        for c in text.chars() {
            fragment.push(if c == ' ' { '\u{2581}' } else { c });
        }
        bpe::encode_fragment(&self.vocab, fragment, bpe, out);
    }

    /// The byte range of `text` each of `ids` covers, for ids that [`Tokenizer::encode`]
    /// produced from `text` with identity normalization and without special tokens (what
    /// chunking on token boundaries needs). `None` when the ids do not spell `text`.
    /// A character split by byte fallback gives ranges that are not on char boundaries.
    pub fn token_spans(&self, text: &str, ids: &[u32]) -> Option<Vec<std::ops::Range<usize>>> {
        let bytes = text.as_bytes();
        let mut spans = Vec::with_capacity(ids.len());
        let mut at = 0;
        for &id in ids {
            let piece = self.piece(id)?;
            let start = at;
            match self.vocab.types[id as usize] {
                token_type::BYTE => {
                    let b = vocab::parse_byte_piece(piece)?;
                    if bytes.get(at) != Some(&b) {
                        return None;
                    }
                    at += 1;
                }
                // Matched whole in the raw text: the piece is the text.
                token_type::CONTROL | token_type::USER_DEFINED if bytes[at..].starts_with(piece.as_bytes()) => {
                    at += piece.len();
                }
                _ => {
                    for c in piece.chars() {
                        let got = text.get(at..)?.chars().next()?;
                        if got != c && !(c == '\u{2581}' && got == ' ') {
                            return None;
                        }
                        at += got.len_utf8();
                    }
                }
            }
            spans.push(start..at);
        }
        (at == bytes.len()).then_some(spans)
    }

    /// Ids back to text: byte-fallback bytes reassembled, `▁` as spaces, a leading BOS and a
    /// trailing EOS dropped; other control ids are written as their text.
    pub fn decode(&self, ids: &[u32]) -> String {
        let ids = ids.strip_prefix(&[self.bos]).unwrap_or(ids);
        let ids = ids.strip_suffix(&[self.eos]).unwrap_or(ids);
        self.text_of(ids.iter().copied())
    }

    /// Control and unknown tokens, BOS and EOS: what TEI's `/tokenize` marks `special` and its
    /// `/decode` skips.
    pub fn is_special(&self, id: u32) -> bool {
        matches!(self.token_type(id), Some(token_type::UNKNOWN | token_type::CONTROL))
            || id == self.bos
            || id == self.eos
    }

    /// Ids back to text as TEI's `/decode` does: every special token left out (`skip_special`)
    /// or written as its text, BOS and EOS included.
    pub fn decode_special(&self, ids: &[u32], skip_special: bool) -> String {
        self.text_of(ids.iter().copied().filter(|&id| !(skip_special && self.is_special(id))))
    }

    fn text_of(&self, ids: impl Iterator<Item = u32>) -> String {
        let mut bytes = Vec::new();
        for id in ids {
            let Some(piece) = self.piece(id) else {
                continue;
            };
            if self.vocab.types[id as usize] == token_type::BYTE {
                if let Some(b) = vocab::parse_byte_piece(piece) {
                    bytes.push(b);
                    continue;
                }
            }
            for c in piece.chars() {
                let c = if c == '\u{2581}' { ' ' } else { c };
                let mut buf = [0u8; 4];
                bytes.extend(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
