//! Reading texts: positional arguments or a JSONL file with a `text` field per line.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Output format of `run` and `tokenize`: readable text, one JSON document, or one JSON
/// object per input line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
}

/// Where the texts and the model come from (shared by `run` and `tokenize`).
#[derive(clap::Args)]
pub struct TextArgs {
    /// Texts (or use --input).
    pub texts: Vec<String>,
    /// JSONL input, one object with a "text" field per line ("-" for stdin).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// GGUF file (default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Longest text argument or input line accepted, in bytes (longer ones are an error naming
    /// the line; the model sees at most its context of 2,048 tokens anyway).
    #[arg(long, default_value_t = DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,
}

/// 4 MiB: far past any text the model's context can hold, short of what takes seconds to
/// tokenize.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 4 << 20;

/// The task prompt put before every text (shared by `run` and `tokenize`).
#[derive(clap::Args)]
pub struct PromptArgs {
    /// Task prompt by name: query, document, Clustering, Classification, STS, ...
    #[arg(long, conflicts_with = "prompt_text")]
    pub prompt: Option<String>,
    /// Literal prompt text put before every text.
    #[arg(long)]
    pub prompt_text: Option<String>,
}

impl PromptArgs {
    /// The prompt, checked (an unknown name is an error listing the known ones).
    pub fn prompt(&self) -> Result<Option<gemma_graph::Prompt>> {
        let prompt = match (&self.prompt, &self.prompt_text) {
            (Some(name), _) => Some(gemma_graph::Prompt::Name(name.clone())),
            (None, Some(text)) => Some(gemma_graph::Prompt::Text(text.clone())),
            (None, None) => None,
        };
        if let Some(p) = &prompt {
            p.text()?;
        }
        Ok(prompt)
    }
}

impl TextArgs {
    pub fn read(&self) -> Result<Vec<String>> {
        read_texts(self.texts.clone(), self.input.as_deref(), self.max_text_bytes)
    }

    pub fn model_path(&self) -> PathBuf {
        crate::model_path(self.model.clone())
    }
}

/// Texts from the command line, or from `input` (one JSON object per line, field `text`;
/// `-` reads standard input). Blank lines are errors: every line is one text, so output
/// lines stay aligned with input lines. Lines are read with a bound (`max_bytes`), so
/// `--input /dev/zero` is an error, not an exhausted memory.
pub fn read_texts(args: Vec<String>, input: Option<&Path>, max_bytes: usize) -> Result<Vec<String>> {
    match input {
        None if args.is_empty() => bail!("no input: give TEXT arguments or --input FILE.jsonl"),
        None => {
            if let Some((i, t)) = args.iter().enumerate().find(|(_, t)| t.len() > max_bytes) {
                bail!(
                    "text argument {} has {} bytes, more than --max-text-bytes {max_bytes}",
                    i + 1,
                    t.len()
                );
            }
            Ok(args)
        }
        Some(_) if !args.is_empty() => bail!("give either TEXT arguments or --input, not both"),
        Some(path) => {
            let reader: Box<dyn BufRead> = if path == Path::new("-") {
                Box::new(std::io::stdin().lock())
            } else {
                if path.is_dir() {
                    bail!("{} is a directory, not a JSONL file", path.display());
                }
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                Box::new(std::io::BufReader::new(f))
            };
            let mut lines = Lines::new(reader, path, max_bytes);
            let mut texts = Vec::new();
            while let Some((n, line)) = lines.next_line()? {
                let at = || format!("{} line {n}", path.display());
                if line.trim().is_empty() {
                    bail!(
                        "{}: empty line; every line must be a JSON object with a string field \"text\"",
                        at()
                    );
                }
                let value: serde_json::Value =
                    serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
                let Some(text) = value.get("text").and_then(|t| t.as_str()) else {
                    bail!("{}: expected an object with a string field \"text\"", at());
                };
                texts.push(text.to_string());
            }
            Ok(texts)
        }
    }
}

/// Lines of an input, each at most `max` bytes, as UTF-8 without the line ending (LF or
/// CRLF) and without a UTF-8 byte-order mark on the first line.
pub struct Lines<'a> {
    reader: Box<dyn BufRead + 'a>,
    path: &'a Path,
    max: usize,
    buf: Vec<u8>,
    number: usize,
}

impl<'a> Lines<'a> {
    pub fn new(reader: Box<dyn BufRead + 'a>, path: &'a Path, max: usize) -> Lines<'a> {
        Lines {
            reader,
            path,
            max,
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line and its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(usize, &str)>> {
        use std::io::Read;
        self.buf.clear();
        self.number += 1;
        let n = self.number;
        // One byte past the limit (plus the newline) tells an overlong line from a full one.
        let limit = self.max as u64 + 2;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("{}: reading line {n}", self.path.display()))?;
        if read == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        if self.buf.len() > self.max {
            bail!(
                "{} line {n}: longer than --max-text-bytes {} bytes",
                self.path.display(),
                self.max
            );
        }
        let mut bytes = &self.buf[..];
        if n == 1 {
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        let line = std::str::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} line {n}: not valid UTF-8 (at byte {} of the line)",
                self.path.display(),
                e.valid_up_to()
            )
        })?;
        Ok(Some((n, line)))
    }
}
