//! `gemma-graph run [TEXT ...] [--input FILE] [--format F] [--output FILE] ...`: embed texts,
//! streaming — records are read, embedded and written a window at a time, in input order.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gemma_graph::{
    ChunkOptions, CompiledGraph, EmbedOptions, Error as LibError, LinearHead, Model, PassLog, Pipeline,
    SentenceTransformersHead, Truncation,
};

use super::ModelArgs;
use crate::input::{PromptArgs, Record, Source, TextArgs};
use crate::output::{Classes, Destination, OutputFormat, Row, Sink};
use crate::stats::{Latency, Places, Stats};
use crate::stored::Encoding;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: TextArgs,
    /// Output format [default: from --output's extension (.jsonl .json .csv .tsv .npy), else text].
    #[arg(long, short, value_enum)]
    format: Option<OutputFormat>,
    /// Write here instead of stdout (under a temporary name until complete).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    model_args: ModelArgs,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Matryoshka dimension (768, 512, 256 or 128): truncate and re-normalize.
    #[arg(long)]
    dim: Option<usize>,
    /// What each stored value is, as sentence-transformers' quantize_embeddings makes it:
    /// float32, float16, int8, uint8 (each column's range from --calibration cut into 256
    /// buckets), binary or ubinary (one bit per value, x > 0, eight to a byte).
    #[arg(long, value_name = "DTYPE", default_value = "float32", conflicts_with = "head")]
    output_dtype: gemma_graph::OutputDtype,
    /// Calibration embeddings for --output-dtype int8/uint8: an .npy matrix of vectors of
    /// representative texts, with the output's dimension (`run ... -o calibration.npy`).
    #[arg(long, value_name = "FILE.npy")]
    calibration: Option<PathBuf>,
    /// Token budget of one forward pass; the memory plan is made for it (default: the
    /// context length), so it may exceed the context to pack more short texts per pass.
    #[arg(long)]
    batch_tokens: Option<usize>,
    /// Most texts per forward pass (1: each text alone).
    #[arg(long)]
    batch_texts: Option<usize>,
    /// Split each text into windows of N tokens (prompt and BOS/EOS added per window) and
    /// write one row per window with its character offsets, instead of truncating.
    #[arg(long, value_name = "N")]
    chunk_tokens: Option<usize>,
    /// Tokens shared by consecutive windows (with --chunk-tokens).
    #[arg(long, value_name = "M", requires = "chunk_tokens", default_value_t = 0)]
    chunk_overlap: usize,
    /// A text longer than the context is an error naming its line (default: truncate it,
    /// with a count on stderr).
    #[arg(long)]
    no_truncate: bool,
    /// Write a null row (JSONL/JSON), empty cells (CSV/TSV) or a NaN row (npy) for a bad
    /// input line instead of stopping; the count is reported at the end.
    #[arg(long)]
    skip_invalid: bool,
    /// No progress bar and no notes on stderr (errors still).
    #[arg(long, short)]
    quiet: bool,
    /// Print statistics to stderr at the end: texts, tokens, time, throughput, pass latency,
    /// backend, threads, arena, peak RSS.
    #[arg(long)]
    stats: bool,
    /// Write the statistics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Print where the time went (per kernel and per layer) to stderr.
    #[arg(long)]
    profile: bool,
    /// A head trained on the embeddings (safetensors with `weight` [classes, 768] and
    /// `bias` [classes], class names in the metadata key "labels" as a JSON array): rows
    /// are its outputs with the best label instead of embeddings.
    #[arg(long, value_name = "FILE.safetensors", conflicts_with_all = ["dim", "graph"])]
    head: Option<PathBuf>,
    /// What the head computes: linear (logits) or linear-softmax (probabilities).
    #[arg(long, value_enum, default_value = "linear-softmax", requires = "head")]
    head_kind: HeadKind,
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadKind {
    Linear,
    LinearSoftmax,
}

/// Records read per window: bounds memory whatever the input's length, and is several full
/// forward passes of short texts.
const WINDOW_TEXTS: usize = 1024;
const WINDOW_BYTES: usize = 8 << 20;
/// A progress bar appears when a job has run this long: a second, or
/// `GEMMA_GRAPH_PROGRESS_AFTER_MS` (the tests set 0, so a quick job shows it on any machine).
fn progress_after() -> Duration {
    std::env::var("GEMMA_GRAPH_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

pub fn run(args: Args) -> Result<()> {
    let chunk = args.chunk_tokens.map(|tokens| ChunkOptions {
        tokens,
        overlap: args.chunk_overlap,
    });
    if let Some(c) = chunk {
        c.check()?;
    }
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(path)) => format_from_extension(path)?,
        (None, None) => OutputFormat::Text,
    };
    let prompt = args.prompt.prompt()?;
    // The input first: a missing file is reported before seconds of model loading.
    let mut source = Source::open(&args.source)?;
    let path = args.source.model_path();
    super::check_model_path(&path)?;

    let t0 = Instant::now();
    // `--batch-tokens` is a budget per pass: the plan still holds one text of the whole context.
    let mut options = args
        .model_args
        .options(args.batch_tokens.unwrap_or(0), args.passes.clone());
    options.plan_holds_context = true;
    let model = match &args.graph {
        Some(ron) => {
            let text = read_bounded(ron, MAX_GRAPH_BYTES)?;
            let compiled =
                CompiledGraph::from_ron(&text).with_context(|| format!("{}: not a compiled graph", ron.display()))?;
            Model::load_compiled(&path, &compiled, &options)?
        }
        None => match &args.head {
            None => super::load_model(&path, &options)?,
            Some(file) => {
                let head = LinearHead {
                    softmax: args.head_kind == HeadKind::LinearSoftmax,
                    ..LinearHead::classifier(file)
                };
                Model::load_heads(&path, &options, &[&SentenceTransformersHead, &head])?
            }
        },
    };
    let classes = args
        .head
        .as_ref()
        .map(|file| -> Result<Classes> {
            let dim = model.heads()[1].dim;
            let labels = model.user_weights().class_labels(&file.display().to_string(), dim)?;
            Ok(Classes {
                labels,
                key: if args.head_kind == HeadKind::LinearSoftmax {
                    "probabilities"
                } else {
                    "logits"
                },
            })
        })
        .transpose()?;
    model.matryoshka_dim(args.dim)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    if args.verbose {
        eprintln!(
            "model {} loaded in {:.0} ms: backend {} (cpu: {}), precision {}, {} threads, arena {} bytes for {} tokens",
            path.display(),
            load_seconds * 1e3,
            model.backend(),
            gemma_graph::backends::cpu_features().join(" "),
            model.precision(),
            model.threads(),
            model.plan().arena_bytes,
            model.max_batch_tokens()
        );
        let p = model.prepared();
        if p.weights > 0 {
            eprintln!(
                "repacked {} weights for the {} kernels: {:.1} MiB in {:.0} ms ({:.1} MiB of originals released)",
                p.weights,
                model.precision(),
                p.bytes as f64 / (1 << 20) as f64,
                p.seconds * 1e3,
                p.released as f64 / (1 << 20) as f64
            );
        }
        if let Some(f) = source.format {
            eprintln!("input format {f:?}");
        }
    }
    let passes = PassLog::new();
    // The CLI's limit is on a line; the library's counts the prompt in front of it too.
    let prompt_bytes = prompt.as_ref().map_or(Ok(0), |p| p.text().map(str::len))?;
    let embed = EmbedOptions {
        max_text_bytes: Some(args.source.max_text_bytes.saturating_add(prompt_bytes)),
        prompt,
        dim: args.dim,
        batch_tokens: args.batch_tokens,
        batch_texts: args.batch_texts,
        truncation: if args.no_truncate {
            Truncation::Error
        } else {
            Truncation::Right
        },
        profile: args.profile.then(|| model.new_profile()),
        passes: Some(passes.clone()),
        encode: args.model_args.encode(),
        ..Default::default()
    };
    // Bad batch options are refused before any input is read (the library's rule).
    model.check_embed_options(&embed)?;
    let dim = match &classes {
        Some(c) => c.labels.len(),
        None => args.dim.unwrap_or(model.output_dim()),
    };
    let encoding = match &classes {
        Some(_) => Encoding::FLOAT32,
        None => Encoding::new(args.output_dtype, args.calibration.as_deref(), dim)?,
    };
    if args.skip_invalid && format == OutputFormat::Npy && encoding.dtype.element_bytes() == 1 {
        bail!(
            "--skip-invalid writes a skipped line as a NaN row in .npy output, which --output-dtype {} \
             cannot hold; use a float dtype or a JSONL/CSV output (a null row)",
            encoding.dtype
        );
    }
    let dest = Destination::open(args.output.as_deref())?;
    let mut job = Job {
        model: &model,
        embed: &embed,
        chunk,
        skip_invalid: args.skip_invalid,
        stats: Stats {
            load_seconds,
            backend: model.backend().to_string(),
            threads: model.threads(),
            arena_bytes: model.plan().arena_bytes,
            ..Default::default()
        },
        truncated_at: Places::default(),
        invalid_at: Places::default(),
        latency: Latency::default(),
        passes: passes.clone(),
    };
    let t1 = Instant::now();
    let result = Sink::new(
        format,
        &dest,
        dim,
        encoding,
        source.columns().map(|c| (c, args.source.text_field.as_str())),
        classes,
    )
    .and_then(|sink| job.stream(&mut source, sink, !args.quiet && std::io::stderr().is_terminal()));
    match result {
        Ok(()) => dest.commit()?,
        Err(e) => {
            dest.abandon();
            return Err(e);
        }
    }
    let mut stats = job.stats;
    stats.finish(&job.latency, t1.elapsed().as_secs_f64());
    if let Some(p) = &embed.profile {
        eprint!("{}", model.profile_report(p));
    }
    if !args.quiet {
        note(
            "texts were longer than the context and were truncated",
            &job.truncated_at,
            "--no-truncate makes this an error; --chunk-tokens N splits long texts instead",
        );
        note(
            "input lines were invalid and written as empty rows",
            &job.invalid_at,
            "",
        );
    }
    if args.stats || args.verbose {
        eprint!("{}", stats.report());
    }
    if let Some(p) = &args.stats_json {
        let json = serde_json::to_string_pretty(&stats)? + "\n";
        crate::outfile::OutFile::write(p, json.as_bytes())?;
    }
    Ok(())
}

/// A count with the first few places on stderr.
fn note(what: &str, places: &Places, hint: &str) {
    if places.count == 0 {
        return;
    }
    let more = if places.count > places.first.len() { ", ..." } else { "" };
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    };
    eprintln!(
        "note: {} {what} ({}{more}){hint}",
        places.count,
        places.first.join(", ")
    );
}

fn format_from_extension(path: &std::path::Path) -> Result<OutputFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "jsonl" | "ndjson" => OutputFormat::Jsonl,
        "json" => OutputFormat::Json,
        "csv" => OutputFormat::Csv,
        "tsv" => OutputFormat::Tsv,
        "npy" => OutputFormat::Npy,
        "txt" => OutputFormat::Text,
        _ => bail!(
            "--output {}: cannot tell the format from the extension; give --format jsonl|json|csv|tsv|npy|text",
            path.display()
        ),
    })
}

/// One text to embed: a record's text or one chunk of it (borrowed from the record: a line
/// cut into windows that overlap by all but one token must not be copied once per window).
struct Unit<'w> {
    record: usize,
    text: &'w str,
    chunk: Option<(usize, usize, usize)>,
    /// Why it cannot be embedded (the record was bad, or too long with --no-truncate).
    error: Option<String>,
}

struct Job<'a> {
    model: &'a Model,
    embed: &'a EmbedOptions,
    chunk: Option<ChunkOptions>,
    skip_invalid: bool,
    stats: Stats,
    truncated_at: Places,
    invalid_at: Places,
    /// Pass timings, drained from the library's log after every window.
    latency: Latency,
    passes: std::sync::Arc<PassLog>,
}

impl Job<'_> {
    fn stream(&mut self, source: &mut Source, mut sink: Sink, progress: bool) -> Result<()> {
        let (started, after) = (Instant::now(), progress_after());
        let mut bar: Option<indicatif::ProgressBar> = None;
        let mut window: Vec<Record> = Vec::new();
        let mut first_index = 0;
        loop {
            window.clear();
            let mut bytes = 0;
            while window.len() < WINDOW_TEXTS && bytes < WINDOW_BYTES {
                let Some(r) = source.next()? else { break };
                bytes += r.cost();
                window.push(r);
            }
            if window.is_empty() {
                break;
            }
            self.window(source, &window, first_index, &mut sink)?;
            first_index += window.len();
            if progress && bar.is_none() && started.elapsed() >= after {
                bar = Some(progress_bar(source.progress().1));
            }
            if let Some(b) = &bar {
                let (read, total) = source.progress();
                b.set_position(if total.is_some() { read } else { first_index as u64 });
                b.set_message(format!("{first_index} texts"));
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        sink.finish()
    }

    /// Embed one window of records and write its rows: its texts (or their chunks) in
    /// groups within the window's bounds, so chunks cannot multiply the memory a window takes.
    fn window(&mut self, source: &Source, window: &[Record], first_index: usize, sink: &mut Sink) -> Result<()> {
        let mut units = Vec::with_capacity(window.len());
        for (i, r) in window.iter().enumerate() {
            let text = match &r.text {
                Ok(t) => t,
                Err(e) if self.skip_invalid => {
                    self.invalid_at.push(source.place(r.number));
                    units.push(Unit {
                        record: i,
                        text: "",
                        chunk: None,
                        error: Some(e.clone()),
                    });
                    continue;
                }
                Err(e) => bail!("{}: {e}", source.place(r.number)),
            };
            match self.chunk {
                None => units.push(Unit {
                    record: i,
                    text,
                    chunk: None,
                    error: None,
                }),
                Some(c) => {
                    let chunks = self.model.chunk_text(text, c, self.embed)?;
                    for (k, ch) in chunks.iter().enumerate() {
                        units.push(Unit {
                            record: i,
                            text: ch.text(text),
                            chunk: Some((k, ch.chars.start, ch.chars.end)),
                            error: None,
                        });
                    }
                }
            }
        }
        let mut start = 0;
        while start < units.len() {
            let (mut end, mut bytes) = (start, 0);
            while end < units.len() && end - start < WINDOW_TEXTS && (end == start || bytes < WINDOW_BYTES) {
                bytes += units[end].text.len();
                end += 1;
            }
            self.group(source, window, &mut units[start..end], first_index, sink)?;
            start = end;
        }
        self.stats.texts += window.len();
        for p in self.passes.take() {
            self.latency.add(p.seconds);
        }
        Ok(())
    }

    /// Embed a group of units of one window and write their rows.
    fn group(
        &mut self,
        source: &Source,
        window: &[Record],
        units: &mut [Unit<'_>],
        first_index: usize,
        sink: &mut Sink,
    ) -> Result<()> {
        let out = loop {
            let todo: Vec<&str> = units.iter().filter(|u| u.error.is_none()).map(|u| u.text).collect();
            match self.model.embed(&todo, self.embed) {
                Ok(out) => break out,
                Err(LibError::WouldTruncate { index, tokens, context }) => {
                    let unit = units
                        .iter_mut()
                        .filter(|u| u.error.is_none())
                        .nth(index)
                        .context("a text index past the window")?;
                    let place = source.place(window[unit.record].number);
                    let msg = format!("{tokens} tokens, more than the {context}-token context (--no-truncate)");
                    if !self.skip_invalid {
                        bail!("{place}: {msg}");
                    }
                    self.invalid_at.push(place);
                    unit.error = Some(msg);
                }
                Err(LibError::NonFiniteOutput { index }) => {
                    let unit = units.iter().filter(|u| u.error.is_none()).nth(index);
                    let place = unit.map_or("?".into(), |u| source.place(window[u.record].number));
                    bail!("{place}: the model gave a vector with NaN or infinite values; refusing to write it");
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut done = out.items.iter();
        for u in units.iter() {
            let r = &window[u.record];
            let item = if u.error.is_none() { done.next() } else { None };
            if let Some(item) = item {
                self.stats.tokens += item.tokens;
                if item.dropped_tokens > 0 {
                    self.stats.truncated += 1;
                    self.truncated_at.push(source.place(r.number));
                }
            } else {
                self.stats.invalid += 1;
            }
            sink.write(&Row {
                index: first_index + u.record,
                embedding: item.map(|it| match it.extra.first() {
                    Some(head) => &head.values[..],
                    None => &it.values[..it.dim],
                }),
                error: u.error.as_deref(),
                tokens: item.map_or(0, |it| it.tokens),
                truncated: item.is_some_and(|it| it.dropped_tokens > 0),
                chunk: u.chunk,
                fields: &r.fields,
                text: u.text,
            })?;
            self.stats.rows += 1;
        }
        Ok(())
    }
}

fn progress_bar(total_bytes: Option<u64>) -> indicatif::ProgressBar {
    let bar = match total_bytes {
        Some(total) => indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} {elapsed} (eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
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
