//! `gemma-graph tokenize [--model PATH] [TEXT ...] [--input FILE] [--format text|json|jsonl]`

use std::io::Write;

use anyhow::Result;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization, Tokenizer};
use gemma_graph::{Input, Sequencer, Truncation};
use serde_json::json;

use crate::input::{Format, PromptArgs, TextArgs};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Normalize {
    None,
    Nfc,
    Nfkc,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: TextArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Show the full length instead of truncating to the context as embedding does.
    #[arg(long)]
    no_truncate: bool,
    /// Tokenize control-token text such as "<bos>" as plain text (changes ids relative to the
    /// reference tokenizer; for untrusted input).
    #[arg(long)]
    plain_control: bool,
    /// As `run --prompt`: tokenize what embedding sees.
    #[command(flatten)]
    prompt: PromptArgs,
    /// Normalize the text first (changes ids relative to the reference tokenizer).
    #[arg(long, value_enum, default_value = "none")]
    normalize: Normalize,
}

pub fn run(args: Args) -> Result<()> {
    let prompt = match args.prompt.prompt()? {
        Some(p) => p.text()?.to_string(),
        None => String::new(),
    };
    let texts = args.source.read()?;
    // The tokenizer and the context from the file's header: no model is compiled.
    let g = Gguf::open(args.source.model_path())?;
    let tok = Tokenizer::from_gguf(&g)?;
    let context = gemma_graph::loader::gemma::GemmaConfig::from_gguf(&g)?.context_length;
    let rules = Sequencer {
        tokenizer: &tok,
        context: (!args.no_truncate).then_some(context),
        prompt: &prompt,
        encode: EncodeOptions {
            control_literals: if args.plain_control {
                ControlLiterals::PlainText
            } else {
                ControlLiterals::Special
            },
            normalization: match args.normalize {
                Normalize::None => Normalization::Identity,
                Normalize::Nfc => Normalization::Nfc,
                Normalize::Nfkc => Normalization::Nfkc,
            },
            ..EncodeOptions::default()
        },
        truncation: Truncation::Right,
        max_text_bytes: args.source.max_text_bytes.saturating_add(prompt.len()),
    };
    let seqs = rules.sequences(texts.iter().map(|t| Input::Text(t)))?;
    let mut out = crate::stdout::Out::stdout();
    let pieces = |ids: &[u32]| ids.iter().map(|&i| tok.piece(i).unwrap_or("")).collect::<Vec<_>>();
    match args.format {
        Format::Jsonl => {
            for seq in &seqs {
                serde_json::to_writer(&mut out, &json!({ "ids": seq.ids }))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let all: Vec<_> = seqs
                .iter()
                .map(|seq| json!({ "ids": seq.ids, "pieces": pieces(&seq.ids), "dropped": seq.dropped }))
                .collect();
            serde_json::to_writer_pretty(&mut out, &all)?;
            out.write_all(b"\n")?;
        }
        Format::Text => {
            for (i, seq) in seqs.iter().enumerate() {
                let dropped = if seq.dropped > 0 {
                    format!(", {} dropped by truncation", seq.dropped)
                } else {
                    String::new()
                };
                writeln!(out, "text {i}: {} tokens{dropped}", seq.ids.len())?;
                for &id in &seq.ids {
                    writeln!(out, "  {id:>7}  {:?}", tok.piece(id).unwrap_or(""))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
