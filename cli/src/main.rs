//! The `gemma-graph` command line. Thin: clap parses, each command validates its settings,
//! one `match` dispatches.

#![forbid(unsafe_code)]

mod commands;
mod input;
mod output;
#[cfg(test)]
mod readme_check;
mod stats;

use std::path::PathBuf;
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

/// `--model` default: `$GEMMA_GRAPH_MODEL`, else the fetched model in the cache.
pub fn model_path(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(gemma_graph::default_model_path)
}

/// Standard output, buffered; its errors say they are standard output's (and keep their
/// kind, so a closed pipe is still recognized).
pub struct Out(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Out {
    pub fn stdout() -> Out {
        Out(std::io::BufWriter::new(std::io::stdout().lock()))
    }
}

fn tag(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("writing to standard output: {e}"))
}

impl std::io::Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(tag)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(tag)
    }
}

/// Write a command's whole output to stdout (errors propagate: a full disk or a closed stdout
/// is an error, a closed pipe ends the command quietly in `main`).
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = Out::stdout();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Whether the error is the reader of our stdout having gone away (`| head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == pipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(pipe))
    })
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

/// Whether standard output was closed when we started (`gemma-graph run ... >&-`). Rust's
/// runtime reopens a closed fd 1 as `/dev/null` (read-write) before `main`, so the output
/// would vanish with exit 0; a shell's `> /dev/null` opens it write-only, which tells the two
/// apart (Linux: `/proc/self/fdinfo`).
fn stdout_was_closed() -> bool {
    #[cfg(target_os = "linux")]
    {
        let target = std::fs::read_link("/proc/self/fd/1");
        let flags = std::fs::read_to_string("/proc/self/fdinfo/1").ok().and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        });
        const O_ACCMODE: u32 = 0o3;
        const O_RDWR: u32 = 0o2;
        target.is_ok_and(|t| t == std::path::Path::new("/dev/null")) && flags.is_some_and(|f| f & O_ACCMODE == O_RDWR)
    }
    #[cfg(not(target_os = "linux"))]
    false
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if stdout_was_closed() {
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
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
