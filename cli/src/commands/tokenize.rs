//! `gemma-graph tokenize [--model PATH] [TEXT ...] [--input FILE] [--format text|json|jsonl]`

use std::io::Write;

use anyhow::Result;
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{ControlLiterals, EncodeOptions, Normalization, Tokenizer};
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
    let texts: Vec<String> = args
        .source
        .read()?
        .into_iter()
        .map(|t| format!("{prompt}{t}"))
        .collect();
    let g = Gguf::open(args.source.model_path())?;
    let tok = Tokenizer::from_gguf(&g)?;
    let context = gemma_graph::loader::gemma::GemmaConfig::from_gguf(&g)
        .map(|c| c.context_length)
        .unwrap_or(2048);
    let opts = EncodeOptions {
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
        add_special: true,
        max_tokens: (!args.no_truncate).then_some(context),
    };
    let mut out = crate::Out::stdout();
    let pieces = |ids: &[u32]| ids.iter().map(|&i| tok.piece(i).unwrap_or("")).collect::<Vec<_>>();
    match args.format {
        Format::Jsonl => {
            for text in &texts {
                let enc = tok.encode(text, &opts);
                serde_json::to_writer(&mut out, &json!({ "ids": enc.ids }))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let all: Vec<_> = texts
                .iter()
                .map(|text| {
                    let enc = tok.encode(text, &opts);
                    json!({ "ids": enc.ids, "pieces": pieces(&enc.ids), "dropped": enc.dropped })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &all)?;
            out.write_all(b"\n")?;
        }
        Format::Text => {
            for (i, text) in texts.iter().enumerate() {
                let enc = tok.encode(text, &opts);
                let dropped = if enc.dropped > 0 {
                    format!(", {} dropped by truncation", enc.dropped)
                } else {
                    String::new()
                };
                writeln!(out, "text {i}: {} tokens{dropped}", enc.ids.len())?;
                for &id in &enc.ids {
                    writeln!(out, "  {id:>7}  {:?}", tok.piece(id).unwrap_or(""))?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
