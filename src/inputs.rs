//! Turning inputs into the sequences a model runs: a prompt in front of a text, tokenization
//! with BOS/EOS, token arrays checked against the vocabulary and wrapped in BOS/EOS, and what a
//! sequence longer than the context gets (its start kept, its end kept, or an error). The one
//! place these rules live: `Model::embed`, the CLI, the HTTP server and the Python package call
//! them (TEI keeps them in its core for every route in the same way).

use gg_loader::gemma::PROMPTS;
use gg_loader::tokenizer::{EncodeOptions, Tokenizer};

use crate::error::Error;

/// Text put in front of every text input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// One of [`PROMPTS`] by name (case-insensitive), e.g. `query` or `document`.
    Name(String),
    /// Literal text.
    Text(String),
}

impl Prompt {
    /// The prompt's text, or an error listing the known names.
    pub fn text(&self) -> Result<&str, Error> {
        match self {
            Prompt::Text(t) => Ok(t),
            Prompt::Name(n) => PROMPTS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(n))
                .map(|(_, t)| *t)
                .ok_or_else(|| {
                    let names: Vec<&str> = PROMPTS.iter().map(|p| p.0).collect();
                    Error::InvalidOption(format!("unknown prompt {n:?}; known: {}", names.join(", ")))
                }),
        }
    }
}

/// The longest text (prompt included) a call accepts by default, in bytes: 4 MiB, far past any
/// text the model's context can hold (2,048 tokens are a few tens of kilobytes), short of what
/// takes the tokenizer seconds and hundreds of megabytes. Every surface shares it: the CLI's
/// `--max-text-bytes`, the server and the Python package; [`crate::EmbedOptions`] can change it.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// What a sequence longer than the model's context gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Truncation {
    /// Keep BOS + the first context−2 tokens + EOS, as sentence-transformers does (default).
    #[default]
    Right,
    /// Keep BOS + the last context−2 tokens + EOS (TEI's `truncation_direction: Left`).
    Left,
    /// Refuse the call ([`Error::WouldTruncate`] names the input).
    Error,
}

/// One thing to embed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// A text: the prompt goes in front, then it is tokenized with BOS/EOS.
    Text(&'a str),
    /// Token ids: checked against the vocabulary, BOS/EOS added unless the array already starts
    /// with BOS and ends with EOS. A prompt does not apply.
    Tokens(&'a [u32]),
}

/// An input as the model sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sequence {
    /// Token ids, BOS and EOS included, at most the context.
    pub ids: Vec<u32>,
    /// Tokens truncation dropped.
    pub dropped: usize,
}

/// The rules of one call: the tokenizer, the context, the prompt, the tokenizer options and
/// the truncation rule.
#[derive(Clone, Copy)]
pub struct Sequencer<'a> {
    pub tokenizer: &'a Tokenizer,
    /// Longest sequence (the model's context); `None`: keep every token (for showing what a
    /// text tokenizes to, never for running it).
    pub context: Option<usize>,
    pub prompt: &'a str,
    pub encode: EncodeOptions,
    pub truncation: Truncation,
    /// Longest text accepted, prompt included ([`MAX_TEXT_BYTES`] by default): checked before
    /// the tokenizer sees it.
    pub max_text_bytes: usize,
}

impl Sequencer<'_> {
    /// Input `index` as a sequence, or an error naming it.
    pub fn sequence(&self, index: usize, input: Input<'_>) -> Result<Sequence, Error> {
        let tok = self.tokenizer;
        let ids = match input {
            Input::Text(text) => {
                let bytes = self.prompt.len() + text.len();
                if bytes > self.max_text_bytes {
                    return Err(Error::TextTooLarge {
                        index,
                        bytes,
                        max: self.max_text_bytes,
                    });
                }
                let options = EncodeOptions {
                    max_tokens: None,
                    ..self.encode
                };
                if self.prompt.is_empty() {
                    tok.encode(text, &options).ids
                } else {
                    let mut joined = String::with_capacity(self.prompt.len() + text.len());
                    joined.push_str(self.prompt);
                    joined.push_str(text);
                    tok.encode(&joined, &options).ids
                }
            }
            Input::Tokens(ids) => {
                if !self.prompt.is_empty() {
                    return Err(Error::InvalidOption(format!(
                        "input {index}: a prompt applies to texts, not token arrays"
                    )));
                }
                let vocab = tok.vocab_size();
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(Error::TokenOutOfVocabulary { index, id, vocab });
                }
                let (bos, eos) = (tok.bos(), tok.eos());
                let wrapped = ids.len() >= 2 && ids[0] == bos && ids[ids.len() - 1] == eos;
                if wrapped || !self.encode.add_special {
                    ids.to_vec()
                } else {
                    let mut out = Vec::with_capacity(ids.len() + 2);
                    out.push(bos);
                    out.extend_from_slice(ids);
                    out.push(eos);
                    out
                }
            }
        };
        self.fit(index, ids)
    }

    /// Every input, in order; the first error names its input.
    pub fn sequences<'i>(&self, inputs: impl IntoIterator<Item = Input<'i>>) -> Result<Vec<Sequence>, Error> {
        inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| self.sequence(index, input))
            .collect()
    }

    /// `ids` within the context: as they are, truncated by the rule (BOS and EOS kept), or an
    /// error.
    fn fit(&self, index: usize, mut ids: Vec<u32>) -> Result<Sequence, Error> {
        let context = match self.context {
            Some(c) if ids.len() > c => c,
            _ => return Ok(Sequence { ids, dropped: 0 }),
        };
        let tok = self.tokenizer;
        // The specials at each end stay; the body between them is cut.
        let head = usize::from(ids.first() == Some(&tok.bos()) && self.encode.add_special);
        let tail = usize::from(ids.len() > head && ids.last() == Some(&tok.eos()) && self.encode.add_special);
        let keep = context.saturating_sub(head + tail);
        let dropped = ids.len() - head - tail - keep;
        match self.truncation {
            Truncation::Error => Err(Error::WouldTruncate {
                index,
                tokens: ids.len(),
                context,
            }),
            Truncation::Right => {
                ids.drain(head + keep..ids.len() - tail);
                ids.shrink_to_fit();
                Ok(Sequence { ids, dropped })
            }
            Truncation::Left => {
                ids.drain(head..head + dropped);
                // A queued sequence must not keep the capacity of a million-id input.
                ids.shrink_to_fit();
                Ok(Sequence { ids, dropped })
            }
        }
    }
}
