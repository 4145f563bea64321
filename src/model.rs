//! Loading a model: GGUF → graph (+ head) → plan → program, weights bound zero-copy.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gg_backends::{Arena, Backend, ByteSource, Precision, Prepared, Program, WeightBytes, WeightTable};
use gg_graph::{CompiledGraph, Graph, PassRecord, Pipeline, Plan, WeightSource};
use gg_loader::gemma::{build_encoder, GemmaConfig};
use gg_loader::gguf::Gguf;
use gg_loader::tokenizer::Tokenizer;
use gg_ops::Rows;

use crate::head::{HeadBuilder, PoolingHead, SentenceTransformersHead};
use crate::user_weights::UserWeights;
use crate::Error;

/// Which kernel table to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best one this CPU supports (detected once).
    #[default]
    Auto,
    /// This one (an error if the CPU cannot run it).
    Force(Backend),
}

/// How to load a model.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    pub backend: BackendChoice,
    /// Worker threads; 0 uses every core.
    pub threads: usize,
    /// Largest batch, in tokens, the memory plan is made for (and so the longest text);
    /// 0 uses the model's context length, at most [`DEFAULT_PLAN_TOKENS`]. At most
    /// [`MAX_BATCH_TOKENS`].
    pub max_batch_tokens: usize,
    /// Compiler passes run on the graph (default: all of them; `Pipeline::None` runs the
    /// graph as built).
    pub passes: Pipeline,
    /// Memory-map the file (default). Without it the file is read into memory: slower to
    /// load and resident, but a file truncated or rewritten under a running model cannot
    /// crash the process (SIGBUS).
    pub mmap: bool,
    /// How matmuls over quantized weights compute: `Fast` (default) integer dot products
    /// with 16-bit activations (cosine ≥ 0.9999 with the exact answer on every golden
    /// text), or `Exact` f32 arithmetic on exactly dequantized weights.
    pub precision: Precision,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            backend: BackendChoice::Auto,
            threads: 0,
            max_batch_tokens: 0,
            passes: Pipeline::Default,
            mmap: true,
            precision: Precision::Fast,
        }
    }
}

/// Most texts packed into one batch (bounds the per-text part of the arena).
pub const MAX_TEXTS_PER_BATCH: usize = 256;
/// The plan's size when none is asked for and the file's context is longer: memory is sized
/// by what a run needs, not by what a file claims.
pub const DEFAULT_PLAN_TOKENS: usize = 8192;
/// Largest plan a model may be loaded with (the arena grows ~15 KB per token).
pub const MAX_BATCH_TOKENS: usize = 65_536;
/// Threads per core beyond which more threads only cost (checked, not clamped).
pub const MAX_THREADS_PER_CORE: usize = 8;

/// `threads` checked against this machine: 0 means every core.
pub(crate) fn thread_count(threads: usize) -> Result<usize, Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match threads {
        0 => Ok(cores),
        n if n > MAX_THREADS_PER_CORE * cores => Err(Error::InvalidOption(format!(
            "threads {n}: more than {MAX_THREADS_PER_CORE} per core on this {cores}-core machine"
        ))),
        n => Ok(n),
    }
}

struct SharedGguf(Arc<Gguf>);

impl ByteSource for SharedGguf {
    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn release(&self, start: usize, len: usize) {
        self.0.release(start, len)
    }
}

/// The team of `threads` threads (already checked by [`thread_count`]) a forward pass runs on.
pub(crate) fn new_team(threads: usize) -> Result<gg_backends::Team, Error> {
    gg_backends::Team::new(threads).map_err(|e| Error::ThreadPool(e.to_string()))
}

/// A loaded, compiled model. `Send + Sync`: share it across threads; each call takes its
/// own scratch arena.
pub struct Model {
    pub(crate) gguf: Arc<Gguf>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) config: GemmaConfig,
    pub(crate) graph: Graph,
    pub(crate) program: Program,
    pub(crate) weights: WeightTable,
    pub(crate) backend: Backend,
    /// The persistent threads of a forward pass (the caller and `threads - 1` workers).
    pub(crate) team: gg_backends::Team,
    pub(crate) arenas: Mutex<Vec<Arena>>,
    pub(crate) prepared: Prepared,
    pub(crate) per_token: bool,
    pub(crate) out_dim: usize,
    pub(crate) head_name: String,
    /// Every head (the first is also `per_token`/`out_dim`/`head_name`).
    pub(crate) heads: Vec<HeadInfo>,
    pub(crate) user: UserWeights,
    warnings: Vec<String>,
    built: Option<Graph>,
    pass_records: Vec<PassRecord>,
}

/// One head's output as the model returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadInfo {
    pub name: String,
    /// One row per token (else one per text).
    pub per_token: bool,
    pub dim: usize,
}

/// What every way of loading needs before it has a graph.
struct Parts {
    gguf: Arc<Gguf>,
    config: GemmaConfig,
    tokenizer: Tokenizer,
    warnings: Vec<String>,
}

impl Parts {
    fn open(path: &Path, mmap: bool) -> Result<Parts, Error> {
        let gguf = Arc::new(if mmap { Gguf::open(path)? } else { Gguf::read(path)? });
        let config = GemmaConfig::from_gguf(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let mut warnings = Vec::new();
        if config.dense.is_empty() {
            warnings.push(
                "the file has no dense_2/dense_3 heads: its vectors differ from the sentence-transformers pipeline"
                    .into(),
            );
        }
        Ok(Parts {
            gguf,
            config,
            tokenizer,
            warnings,
        })
    }

    /// Plan, compile and bind a final graph.
    fn assemble(
        self,
        graph: Graph,
        built: Option<Graph>,
        pass_records: Vec<PassRecord>,
        options: &ModelOptions,
        head_names: Vec<String>,
        user: UserWeights,
    ) -> Result<Model, Error> {
        let Parts {
            gguf,
            config,
            tokenizer,
            warnings,
        } = self;
        let heads: Vec<HeadInfo> = graph
            .outputs()
            .iter()
            .zip(&head_names)
            .map(|(&o, name)| HeadInfo {
                name: name.clone(),
                per_token: graph.node(o).shape.rows == Rows::Tokens,
                dim: graph.node(o).shape.cols,
            })
            .collect();
        let (per_token, out_dim, head_name) = (heads[0].per_token, heads[0].dim, heads[0].name.clone());
        let backend = match options.backend {
            BackendChoice::Auto => gg_backends::backend_from_env()?,
            BackendChoice::Force(b) => b,
        };
        let table = backend.table()?;
        let threads = thread_count(options.threads)?;
        let max_tokens = match options.max_batch_tokens {
            0 => config.context_length.min(DEFAULT_PLAN_TOKENS),
            n if n > MAX_BATCH_TOKENS => {
                return Err(Error::InvalidOption(format!(
                    "max_batch_tokens {n}: at most {MAX_BATCH_TOKENS} tokens per batch"
                )))
            }
            n => n,
        };
        // Every text brings its BOS/EOS, so a batch holds at most max_tokens / 2 texts; a cap
        // keeps the per-text values (pooled rows, dense outputs) small.
        let min_tokens_per_text = tokenizer.n_special(&Default::default()).max(1);
        let max_seqs = (max_tokens / min_tokens_per_text).clamp(1, MAX_TEXTS_PER_BATCH);
        let program = Program::compile(&graph, table, max_tokens, max_seqs, options.precision)?;
        let mut weights = bind_weights(&graph, &gguf, &user)?;
        check_finite(&graph, &weights)?;
        let prepared = weights.prepare(&program).map_err(|e| {
            let name = graph.weights().get(e.index).map(|d| d.name());
            gg_backends::weights::WeightError { name, ..e }
        })?;
        let team = new_team(threads)?;
        let arena = program.new_arena();
        Ok(Model {
            gguf,
            tokenizer,
            config,
            graph,
            program,
            weights,
            backend,
            team,
            arenas: Mutex::new(vec![arena]),
            prepared,
            per_token,
            out_dim,
            head_name,
            heads,
            user,
            warnings,
            built,
            pass_records,
        })
    }
}

impl Model {
    /// Load with default options and the sentence-transformers head.
    ///
    /// The file is memory-mapped: it must not be modified or truncated while the model lives.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, Error> {
        Self::load_with(path, &ModelOptions::default(), &SentenceTransformersHead)
    }

    /// Load with options and a pooling head of your choice.
    pub fn load_with(path: impl AsRef<Path>, options: &ModelOptions, head: &dyn PoolingHead) -> Result<Model, Error> {
        Self::load_heads(path, options, &[head])
    }

    /// Load the encoder once with several heads on it: one forward pass computes every
    /// head's output ([`crate::Embeddings::head`]). The first head's output is the
    /// embedding (`vector`, Matryoshka `dim`); names must differ.
    pub fn load_heads(
        path: impl AsRef<Path>,
        options: &ModelOptions,
        heads: &[&dyn PoolingHead],
    ) -> Result<Model, Error> {
        if heads.is_empty() {
            return Err(Error::InvalidOption("a model needs at least one head".into()));
        }
        let parts = Parts::open(path.as_ref(), options.mmap)?;
        let (mut graph, hidden) = build_encoder(&parts.gguf, &parts.config)?;
        let mut user = UserWeights::default();
        let mut names: Vec<String> = Vec::new();
        let mut outputs = Vec::new();
        for (i, head) in heads.iter().enumerate() {
            let name = head.name().to_string();
            if names.contains(&name) {
                return Err(Error::InvalidOption(format!("two heads are named {name:?}")));
            }
            let prefix = if i == 0 {
                "head".to_string()
            } else {
                format!("head.{name}")
            };
            let out = head.build(&mut HeadBuilder::new(
                &mut graph,
                &parts.gguf,
                &parts.config,
                hidden,
                name.clone(),
                prefix,
                &mut user,
            ))?;
            outputs.push(HeadBuilder::node(out));
            names.push(name);
        }
        graph.set_outputs(outputs);
        graph.validate()?;
        let built = graph.clone();
        let pass_records = gg_graph::run_pipeline(&mut graph, &options.passes)?;
        parts.assemble(graph, Some(built), pass_records, options, names, user)
    }

    /// Load a graph compiled earlier (`gemma-graph dump --format ron`) over the weights of
    /// the GGUF at `path`. The graph is validated and planned again for `options`.
    pub fn load_compiled(
        path: impl AsRef<Path>,
        compiled: &CompiledGraph,
        options: &ModelOptions,
    ) -> Result<Model, Error> {
        let parts = Parts::open(path.as_ref(), options.mmap)?;
        let graph = compiled.graph.clone();
        graph.validate()?;
        check_weights_against_file(&graph, &parts.gguf)?;
        // A plan in the file is checked, not trusted: planned again for its batch size, it
        // must come out the same.
        let mut options = options.clone();
        if let (Some(p), 0) = (&compiled.plan, options.max_batch_tokens) {
            options.max_batch_tokens = p.max_tokens;
        }
        let names = (0..graph.outputs().len())
            .map(|i| {
                if i == 0 {
                    "compiled".to_string()
                } else {
                    format!("compiled.{i}")
                }
            })
            .collect();
        let model = parts.assemble(graph, None, Vec::new(), &options, names, UserWeights::default())?;
        if let Some(saved) = &compiled.plan {
            let now = model.plan();
            let same = (saved.max_tokens, saved.max_seqs, saved.arena_bytes, &saved.values)
                == (now.max_tokens, now.max_seqs, now.arena_bytes, &now.values);
            if !same {
                return Err(Error::PlanMismatch(format!(
                    "the file's plan ({} tokens, {} sequences, {}-byte arena) is not what this graph plans to ({} tokens, {} sequences, {}-byte arena, or different offsets); remove the plan section to plan it afresh",
                    saved.max_tokens, saved.max_seqs, saved.arena_bytes, now.max_tokens, now.max_seqs, now.arena_bytes
                )));
            }
        }
        Ok(model)
    }

    /// The graph as built, before the passes (not kept for compiled graphs).
    pub fn built_graph(&self) -> Option<&Graph> {
        self.built.as_ref()
    }

    /// The compiled graph and its plan, serializable with `CompiledGraph::to_ron`.
    pub fn compiled(&self) -> CompiledGraph {
        CompiledGraph {
            graph: self.graph.clone(),
            plan: Some(self.program.plan().clone()),
        }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn config(&self) -> &GemmaConfig {
        &self.config
    }

    /// The compiled graph (encoder + head).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The static buffer plan.
    pub fn plan(&self) -> &Plan {
        self.program.plan()
    }

    /// The lowered program: one resolved kernel step per node (`dump` lists them).
    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// The precision the matmuls were lowered for.
    pub fn precision(&self) -> Precision {
        self.program.precision()
    }

    /// The weights repacked at load for the chosen kernels: how many, their bytes, the time.
    pub fn prepared(&self) -> Prepared {
        self.prepared
    }

    /// Largest batch in tokens (and longest text) the plan allows.
    pub fn max_batch_tokens(&self) -> usize {
        self.program.max_tokens()
    }

    /// Width of each output row.
    pub fn output_dim(&self) -> usize {
        self.out_dim
    }

    /// Whether the head returns a row per token (else one vector per text).
    pub fn is_per_token(&self) -> bool {
        self.per_token
    }

    pub fn head_name(&self) -> &str {
        &self.head_name
    }

    /// Every head, in the order they were given.
    pub fn heads(&self) -> &[HeadInfo] {
        &self.heads
    }

    /// The weights heads loaded from their own files (and those files' metadata).
    pub fn user_weights(&self) -> &UserWeights {
        &self.user
    }

    /// Things the caller may want to show the user (e.g. a file without dense heads).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What each compiler pass did.
    pub fn pass_records(&self) -> &[PassRecord] {
        &self.pass_records
    }

    /// The underlying GGUF file.
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }
}

/// A graph from outside (a saved RON file) names tensors with a type and shape: both must be
/// what the file holds, or the graph would read the right bytes the wrong way.
fn check_weights_against_file(graph: &Graph, gguf: &Gguf) -> Result<(), Error> {
    for desc in graph.weights() {
        let names: Vec<&str> = match &desc.source {
            WeightSource::Tensor(n) => vec![n.as_str()],
            WeightSource::ConcatRows(ns) => ns.iter().map(String::as_str).collect(),
            WeightSource::User { file, .. } => {
                return Err(Error::GraphMismatch {
                    weight: desc.name(),
                    what: format!(
                    "saved graphs do not carry a head's own weights; load the model with the head (and {file}) instead"
                ),
                })
            }
        };
        let mismatch = |what: String| Error::GraphMismatch {
            weight: desc.name(),
            what,
        };
        let (mut rows, mut cols) = (0usize, None);
        for name in names {
            let t = gguf.tensor(name)?;
            let dtype = t.ty.to_dtype();
            if dtype != Some(desc.dtype) {
                return Err(mismatch(format!(
                    "the graph says {}, the file's {name:?} is {}",
                    desc.dtype, t.ty
                )));
            }
            let shape = t.shape();
            let (r, c) = match shape[..] {
                [c] => (1, c),
                [r, c] => (r, c),
                _ => return Err(mismatch(format!("the file's {name:?} has shape {shape:?}"))),
            };
            if cols.is_some_and(|k| k != c) {
                return Err(mismatch(format!(
                    "stacked tensors of different widths ({name:?} has {c})"
                )));
            }
            cols = Some(c);
            rows += r;
        }
        let want = gg_ops::Shape::fixed(rows, cols.unwrap_or(0));
        if desc.shape != want {
            return Err(mismatch(format!(
                "the graph says {}, the file holds {want}",
                desc.shape
            )));
        }
    }
    Ok(())
}

/// NaN or infinite weights would turn every vector into NaN (or zeros after a NaN scale):
/// refuse them at load, naming the tensor. Reads scales only for quantized types, but those sit
/// on every page, so the file pages are let go of as the scan passes them, [`SCAN_CHUNK_BYTES`]
/// of rows at a time: what the first pass reads comes back from the page cache, what it never
/// reads (most embedding rows: 805 MB of them in an F32 file) is never resident all at once.
fn check_finite(graph: &Graph, weights: &WeightTable) -> Result<(), Error> {
    for (i, desc) in graph.weights().iter().enumerate() {
        let Some(info) = gg_backends::wtypes::info(desc.dtype) else {
            continue; // lowering has refused the type already
        };
        let bad = scan_finite(
            weights.view(i),
            info.first_non_finite,
            SCAN_CHUNK_BYTES,
            |offset, len| weights.release_file_range(i, offset, len),
        );
        if let Some(element) = bad {
            return Err(Error::NonFiniteWeight {
                weight: desc.name(),
                element,
            });
        }
        // The chunks release only the whole pages inside them; this takes the pages that
        // straddle two chunks.
        weights.release_file_pages(i);
    }
    Ok(())
}

/// Rows scanned between two releases of file pages.
const SCAN_CHUNK_BYTES: usize = 8 << 20;

/// The first element of the first block of `view` holding a NaN or an infinity, scanning whole
/// rows about `chunk_bytes` at a time and handing each clean chunk's byte range to `done`.
fn scan_finite(
    view: gg_ops::WeightView<'_>,
    first_non_finite: fn(gg_ops::WeightView<'_>) -> Option<usize>,
    chunk_bytes: usize,
    mut done: impl FnMut(usize, usize),
) -> Option<usize> {
    let rows = view.rows();
    let row_bytes = view.row_bytes();
    let rows_per_chunk = (chunk_bytes / row_bytes.max(1)).max(1);
    let block_len = view.dtype().block_len();
    for r0 in (0..rows).step_by(rows_per_chunk) {
        let n = rows_per_chunk.min(rows - r0);
        if let Some(block) = first_non_finite(view.rows_range(r0, n)) {
            return Some(r0 * view.cols() + block * block_len);
        }
        done(r0 * row_bytes, n * row_bytes);
    }
    None
}

/// Weights for the graph's table: file tensors zero-copy, concatenations built once.
fn bind_weights(graph: &Graph, gguf: &Arc<Gguf>, user: &UserWeights) -> Result<WeightTable, Error> {
    let source: Arc<dyn ByteSource> = Arc::new(SharedGguf(gguf.clone()));
    let table = WeightTable::bind(
        graph.weights(),
        |name| {
            let t = gguf.tensor(name).map_err(|e| e.to_string())?;
            Ok(WeightBytes::Shared {
                source: source.clone(),
                start: (gguf.data_start() + t.offset) as usize,
                len: t.n_bytes as usize,
            })
        },
        |file, tensor| {
            let t = user
                .get(file, tensor)
                .ok_or_else(|| format!("no tensor {tensor:?} was loaded from {file}"))?;
            let bytes: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok(WeightBytes::owned(&bytes))
        },
    )?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::scan_finite;
    use gg_ops::{DType, WeightView};

    /// `values` as f32 bytes in a buffer, and the 4-aligned offset they start at.
    fn f32_bytes(values: &[f32]) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; values.len() * 4 + 4];
        let at = buf.as_ptr().align_offset(4);
        for (c, v) in buf[at..].chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        (buf, at)
    }

    #[test]
    fn the_finiteness_scan_names_the_element_and_releases_only_clean_chunks() {
        // 10 rows × 32 f32, chunks of 3 rows; a NaN at row 7, column 5.
        let (rows, cols) = (10, 32);
        let row_bytes = cols * 4;
        let info = gg_backends::wtypes::info(DType::F32).unwrap();
        let mut values = vec![1f32; rows * cols];
        values[7 * cols + 5] = f32::NAN;
        let (buf, at) = f32_bytes(&values);
        let view = WeightView::new(DType::F32, rows, cols, &buf[at..at + rows * row_bytes]).unwrap();
        let mut released = Vec::new();
        let bad = scan_finite(view, info.first_non_finite, 3 * row_bytes, |o, n| released.push((o, n)));
        assert_eq!(bad, Some(7 * cols + 5));
        assert_eq!(released, [(0, 3 * row_bytes), (3 * row_bytes, 3 * row_bytes)]);
        // A clean weight: every row released, the short last chunk included.
        let (buf, at) = f32_bytes(&vec![0f32; rows * cols]);
        let view = WeightView::new(DType::F32, rows, cols, &buf[at..at + rows * row_bytes]).unwrap();
        let mut released = Vec::new();
        assert_eq!(
            scan_finite(view, info.first_non_finite, 4 * row_bytes, |o, n| released.push((o, n))),
            None
        );
        assert_eq!(
            released,
            [
                (0, 4 * row_bytes),
                (4 * row_bytes, 4 * row_bytes),
                (8 * row_bytes, 2 * row_bytes)
            ]
        );
    }
}
