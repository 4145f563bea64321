//! The `gemma-graph` command line. Thin: clap parses, each command validates its settings,
//! one `match` dispatches.

#![forbid(unsafe_code)]

mod commands;
mod input;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gemma-graph",
    version,
    about = "EmbeddingGemma text embeddings from GGUF, via a graph compiler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts with the model.
    Run(commands::run::Args),
    /// Show the compiled graph and its memory plan (text, Graphviz DOT, RON, SVG).
    Dump(commands::dump::Args),
    /// Show a GGUF file: metadata, tensors, totals, and the model as the loader understands it.
    Inspect(commands::inspect::Args),
    /// Convert a sentence-transformers EmbeddingGemma checkpoint to GGUF.
    Convert(commands::convert::Args),
    /// Show the token ids and pieces of texts, exactly as embedding sees them.
    Tokenize(commands::tokenize::Args),
}

/// `--model` default: `$GEMMA_GRAPH_MODEL`, else the fetched model in the cache.
pub fn model_path(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(gemma_graph::default_model_path)
}

/// The error and its causes, skipping causes whose text an outer message already shows
/// (library errors include their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Dump(args) => commands::dump::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
