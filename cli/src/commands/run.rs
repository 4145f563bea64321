//! `gemma-graph run [TEXT ...] [--input F.jsonl] [--format text|json|jsonl] ...`

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gemma_graph::{
    Backend, BackendChoice, CompiledGraph, ControlLiterals, EmbedOptions, EncodeOptions, Model, ModelOptions, Pipeline,
    SentenceTransformersHead,
};
use serde_json::json;

use crate::input::{Format, PromptArgs, TextArgs};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Auto,
    Scalar,
    Avx2,
    Avx512,
}

impl BackendArg {
    pub fn choice(self) -> BackendChoice {
        match self {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Scalar => BackendChoice::Force(Backend::Scalar),
            BackendArg::Avx2 => BackendChoice::Force(Backend::Avx2),
            BackendArg::Avx512 => BackendChoice::Force(Backend::Avx512),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: TextArgs,
    /// text: a short preview per text; json: one array; jsonl: one {"embedding": [...]} per line.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Kernel table ("auto": the best this CPU supports; GEMMA_GRAPH_BACKEND overrides it).
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokenize control-token text such as "<bos>" as plain text: for untrusted input (the
    /// ids then differ from the reference tokenizer's for such texts).
    #[arg(long)]
    plain_control: bool,
    /// Read the model into memory instead of memory-mapping it (a file changed under a
    /// running process cannot crash it).
    #[arg(long)]
    no_mmap: bool,
    /// Print where the time went (per kernel and per layer) to stderr.
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Matryoshka dimension (768, 512, 256 or 128): truncate and re-normalize.
    #[arg(long)]
    dim: Option<usize>,
    /// Tokens per batch (default: the model's context length).
    #[arg(long)]
    batch_tokens: Option<usize>,
    /// Compiler passes: none, default, or a comma-separated list of pass names.
    #[arg(long, default_value = "default")]
    passes: Pipeline,
    /// Run a graph saved by `dump --format ron` (over this model's weights).
    #[arg(long)]
    graph: Option<PathBuf>,
    /// Print the backend, plan and timings to stderr.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: Args) -> Result<()> {
    let texts = args.source.read()?;
    if let Some(d) = args.dim {
        if !gemma_graph::MATRYOSHKA_DIMS.contains(&d) {
            bail!(
                "--dim {d}: EmbeddingGemma is trained for {:?}",
                gemma_graph::MATRYOSHKA_DIMS
            );
        }
    }
    let prompt = args.prompt.prompt()?;
    let options = ModelOptions {
        backend: args.backend.choice(),
        threads: args.threads,
        passes: args.passes,
        mmap: !args.no_mmap,
        ..Default::default()
    };
    let path = args.source.model_path();
    let t0 = Instant::now();
    let model = match &args.graph {
        Some(ron) => {
            let text = read_bounded(ron, MAX_GRAPH_BYTES)?;
            let compiled =
                CompiledGraph::from_ron(&text).with_context(|| format!("{}: not a compiled graph", ron.display()))?;
            Model::load_compiled(&path, &compiled, &options)?
        }
        None => Model::load_with(&path, &options, &SentenceTransformersHead)?,
    };
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    if args.verbose {
        eprintln!(
            "model {} loaded in {:.0} ms: backend {} (cpu: {}), {} threads, arena {} bytes for {} tokens",
            path.display(),
            t0.elapsed().as_secs_f64() * 1e3,
            model.backend(),
            gemma_graph::backends::cpu_features().join(" "),
            model.threads(),
            model.plan().arena_bytes,
            model.max_batch_tokens()
        );
    }
    let embed = EmbedOptions {
        prompt,
        dim: args.dim,
        batch_tokens: args.batch_tokens,
        profile: args.profile.then(|| model.new_profile()),
        encode: EncodeOptions {
            control_literals: if args.plain_control {
                ControlLiterals::PlainText
            } else {
                ControlLiterals::Special
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let t1 = Instant::now();
    let out = model.embed(&texts, &embed)?;
    if let Some(p) = &embed.profile {
        eprint!("{}", model.profile_report(p));
    }
    if args.verbose {
        let tokens: usize = out.items.iter().map(|i| i.tokens).sum();
        let secs = t1.elapsed().as_secs_f64();
        eprintln!(
            "embedded {} texts ({tokens} tokens) in {:.3} s: {:.1} texts/s, {:.0} tokens/s",
            out.len(),
            secs,
            out.len() as f64 / secs,
            tokens as f64 / secs
        );
    }
    for (i, item) in out.items.iter().enumerate() {
        if item.dropped_tokens > 0 {
            eprintln!(
                "note: text {i} was truncated to {} tokens ({} dropped)",
                item.tokens, item.dropped_tokens
            );
        }
    }

    let mut w = crate::Out::stdout();
    match args.format {
        Format::Jsonl => {
            for i in 0..out.len() {
                serde_json::to_writer(&mut w, &json!({ "embedding": out.vector(i) }))?;
                w.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let all: Vec<_> = (0..out.len())
                .map(|i| json!({ "embedding": out.vector(i), "tokens": out.items[i].tokens }))
                .collect();
            serde_json::to_writer(&mut w, &all)?;
            w.write_all(b"\n")?;
        }
        Format::Text => {
            for (i, text) in texts.iter().enumerate() {
                let v = out.vector(i);
                let preview: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.5}")).collect();
                let excerpt: String = text.chars().take(40).collect();
                writeln!(
                    w,
                    "{i}\t{excerpt:?}\t{} tokens\t[{} ...] ({} dims)",
                    out.items[i].tokens,
                    preview.join(", "),
                    v.len()
                )?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// A saved graph is well under a megabyte; refuse to read gigabytes of something else.
const MAX_GRAPH_BYTES: u64 = 64 << 20;

/// A text file of at most `max` bytes.
fn read_bounded(path: &std::path::Path, max: u64) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: larger than {max} bytes; not a saved graph", path.display());
    }
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text; not a saved graph", path.display()))
}
