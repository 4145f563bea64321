//! Splitting long texts into overlapping windows on token boundaries, as RAG pipelines do
//! before embedding: each window becomes a text of its own (the prompt and BOS/EOS are added
//! to it like to any text), so a chunk's vector is exactly the vector of its text.

use std::ops::Range;

use gg_loader::tokenizer::{EncodeOptions, Normalization};

use crate::embed::EmbedOptions;
use crate::error::Error;
use crate::model::Model;

/// Window size and overlap, in the text's own tokens (prompt and BOS/EOS not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOptions {
    pub tokens: usize,
    pub overlap: usize,
}

/// One window of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Byte range in the text (whitespace at both ends left out).
    pub bytes: Range<usize>,
    /// The same range in characters (Unicode scalar values), for tools that index that way.
    pub chars: Range<usize>,
}

impl Chunk {
    pub fn text<'a>(&self, text: &'a str) -> &'a str {
        &text[self.bytes.clone()]
    }
}

impl ChunkOptions {
    /// Windows of at least one token, overlapping by fewer than that.
    pub fn check(&self) -> Result<(), Error> {
        if self.tokens == 0 {
            return Err(Error::BadOption {
                option: "chunk_tokens",
                value: "0".into(),
                why: "must be at least 1".into(),
            });
        }
        if self.overlap >= self.tokens {
            return Err(Error::BadOption {
                option: "chunk_overlap",
                value: self.overlap.to_string(),
                why: format!("must be smaller than the chunk size ({} tokens)", self.tokens),
            });
        }
        Ok(())
    }
}

impl Model {
    /// Split `text` into windows of `chunk.tokens` tokens overlapping by `chunk.overlap`
    /// (an empty or short text gives one chunk). The windows are cut where the text's own
    /// tokenization puts token boundaries; a character split by byte fallback goes whole to
    /// both sides. Errors when a window plus the prompt and BOS/EOS cannot fit the context.
    pub fn chunk_text(&self, text: &str, chunk: ChunkOptions, options: &EmbedOptions) -> Result<Vec<Chunk>, Error> {
        chunk.check()?;
        if options.encode.normalization != Normalization::Identity {
            return Err(Error::InvalidOption(
                "chunking reports offsets into the text as given; it needs identity normalization".into(),
            ));
        }
        let prompt = match &options.prompt {
            Some(p) => p.text()?,
            None => "",
        };
        let with_specials = EncodeOptions {
            max_tokens: None,
            ..options.encode
        };
        let prompt_tokens = self.tokenizer().encode(prompt, &with_specials).ids.len();
        let context = self.config().context_length;
        if prompt_tokens + chunk.tokens > context {
            return Err(Error::InvalidOption(format!(
                "chunks of {} tokens do not fit the {context}-token context with the prompt and BOS/EOS ({prompt_tokens} tokens)",
                chunk.tokens
            )));
        }
        let plain = EncodeOptions {
            add_special: false,
            ..with_specials
        };
        let ids = self.tokenizer().encode(text, &plain).ids;
        let spans = self.tokenizer().token_spans(text, &ids).ok_or_else(|| {
            Error::InvalidOption("the text's tokens do not spell the text; it cannot be chunked".into())
        })?;
        let step = chunk.tokens - chunk.overlap;
        let (mut starts, mut ends) = (CharCursor::default(), CharCursor::default());
        let mut chunks = Vec::new();
        let mut first = 0;
        loop {
            let last = (first + chunk.tokens).min(spans.len());
            let range = match (spans.get(first), last.checked_sub(1).and_then(|l| spans.get(l))) {
                (Some(a), Some(b)) => floor_char(text, a.start)..ceil_char(text, b.end),
                _ => 0..text.len(),
            };
            let bytes = trimmed(text, range);
            chunks.push(Chunk {
                chars: starts.advance(text, bytes.start)..ends.advance(text, bytes.end),
                bytes,
            });
            if last >= spans.len() {
                break;
            }
            first += step;
        }
        Ok(chunks)
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `range` without whitespace at either end.
fn trimmed(text: &str, range: Range<usize>) -> Range<usize> {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    start..start + slice.trim().len()
}

/// Byte offsets to char offsets for offsets that only grow (one pass over the text).
#[derive(Default)]
struct CharCursor {
    byte: usize,
    char: usize,
}

impl CharCursor {
    fn advance(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            *self = CharCursor::default();
        }
        self.char += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.char
    }
}
