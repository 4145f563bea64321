//! The `gemma-graph` command line. Thin: clap parses, each command validates its settings,
//! one `match` dispatches.

#![forbid(unsafe_code)]

mod accuracy;
mod commands;
mod input;
mod outfile;
mod output;
#[cfg(test)]
mod readme_check;
mod stats;
mod stdout;
mod stored;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str =
    "Exit codes: 0 success, 1 runtime or input error (the message names the file, line, key or tensor), 2 usage error.";

#[derive(Parser)]
#[command(
    name = "gemma-graph",
    version,
    about = "EmbeddingGemma text embeddings from GGUF, via a graph compiler",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts: arguments or a JSONL/lines/CSV/TSV file, to JSONL/JSON/CSV/TSV/npy.
    #[command(after_help = EXIT_CODES)]
    Run(commands::run::Args),
    /// Find the texts of a corpus closest to queries.
    #[command(after_help = EXIT_CODES)]
    Search(commands::search::Args),
    /// The cosine similarity of every pair of texts.
    #[command(after_help = EXIT_CODES)]
    Similarity(commands::similarity::Args),
    /// Show the compiled graph and its memory plan (text, Graphviz DOT, RON, SVG).
    #[command(after_help = EXIT_CODES)]
    Dump(commands::dump::Args),
    /// Show a GGUF file: metadata, tensors, totals, and the model as the loader understands it.
    #[command(after_help = EXIT_CODES)]
    Inspect(commands::inspect::Args),
    /// Convert a sentence-transformers EmbeddingGemma checkpoint to GGUF.
    #[command(after_help = EXIT_CODES)]
    Convert(commands::convert::Args),
    /// Show the token ids and pieces of texts, exactly as embedding sees them.
    #[command(after_help = EXIT_CODES)]
    Tokenize(commands::tokenize::Args),
    /// Serve embeddings over HTTP: OpenAI /v1/embeddings, TEI /embed, /health, /metrics.
    #[command(after_help = EXIT_CODES)]
    Serve(commands::serve::Args),
}

/// The error and its causes, skipping causes whose text an outer message already shows
/// (library errors include their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    // An option the library refused is named as the flag that set it.
    if let Some(gemma_graph::Error::BadOption { option, value, why }) =
        e.chain().find_map(|c| c.downcast_ref::<gemma_graph::Error>())
    {
        return format!("--{} {value} {why}", option.replace('_', "-"));
    }
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
    if stdout::stdout_was_closed() {
        eprintln!("error: standard output is closed; nothing would be written");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Similarity(args) => commands::similarity::run(args),
        Command::Dump(args) => commands::dump::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `gemma-graph inspect | head`: the reader has what it wanted.
        Err(e) if stdout::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
