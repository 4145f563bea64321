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
}

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
        read_texts(self.texts.clone(), self.input.as_deref())
    }

    pub fn model_path(&self) -> PathBuf {
        crate::model_path(self.model.clone())
    }
}

/// Texts from the command line, or from `input` (one JSON object per line, field `text`;
/// `-` reads standard input). Blank lines are errors: every line is one text, so output
/// lines stay aligned with input lines.
pub fn read_texts(args: Vec<String>, input: Option<&Path>) -> Result<Vec<String>> {
    match input {
        None if args.is_empty() => bail!("no input: give TEXT arguments or --input FILE.jsonl"),
        None => Ok(args),
        Some(_) if !args.is_empty() => bail!("give either TEXT arguments or --input, not both"),
        Some(path) => {
            let reader: Box<dyn BufRead> = if path == Path::new("-") {
                Box::new(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                Box::new(std::io::BufReader::new(f))
            };
            let mut texts = Vec::new();
            for (i, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
                let value: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("{} line {}: not valid JSON", path.display(), i + 1))?;
                let Some(text) = value.get("text").and_then(|t| t.as_str()) else {
                    bail!(
                        "{} line {}: expected an object with a string field \"text\"",
                        path.display(),
                        i + 1
                    );
                };
                texts.push(text.to_string());
            }
            Ok(texts)
        }
    }
}
