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
    /// Make the plan hold one text of the whole context (as the default does) even when
    /// `max_batch_tokens` is smaller: for callers whose `max_batch_tokens` is a budget per
    /// forward pass (`run --batch-tokens`), not a limit on texts.
    pub plan_holds_context: bool,
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
            plan_holds_context: false,
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
    gguf: Arc<Gguf>,
    tokenizer: Tokenizer,
    config: GemmaConfig,
    graph: Graph,
    program: Program,
    weights: WeightTable,
    backend: Backend,
    /// The persistent threads of a forward pass (the caller and `threads - 1` workers).
    team: gg_backends::Team,
    /// Arenas of finished calls, for the next ones.
    arenas: Mutex<Vec<Arena>>,
    prepared: Prepared,
    /// Every head (the first gives the embedding).
    heads: Vec<HeadInfo>,
    user: UserWeights,
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
        let backend = match options.backend {
            BackendChoice::Auto => gg_backends::backend_from_env()?,
            BackendChoice::Force(b) => b,
        };
        let table = backend.table()?;
        let threads = thread_count(options.threads)?;
        let context_plan = config.context_length.min(DEFAULT_PLAN_TOKENS);
        let max_tokens = match options.max_batch_tokens {
            0 => context_plan,
            n if n > MAX_BATCH_TOKENS => {
                return Err(Error::InvalidOption(format!(
                    "max_batch_tokens {n}: at most {MAX_BATCH_TOKENS} tokens per batch"
                )))
            }
            n if options.plan_holds_context => n.max(context_plan),
            n => n,
        };
        // Every text brings its BOS/EOS, so a batch holds at most max_tokens / 2 texts; a cap
        // keeps the per-text values (pooled rows, dense outputs) small.
        let min_tokens_per_text = tokenizer.n_special(&Default::default()).max(1);
        let max_seqs = (max_tokens / min_tokens_per_text).clamp(1, MAX_TEXTS_PER_BATCH);
        let program = Program::compile(&graph, table, max_tokens, max_seqs, options.precision)?;
        let mut weights = bind_weights(&graph, &gguf, &user)?;
        weights.check_finite().map_err(|e| Error::NonFiniteWeight {
            weight: e.name.unwrap_or_else(|| format!("weight {}", e.index)),
            element: e.element,
        })?;
        let prepared = program.prepare(&mut weights)?;
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
            // The saved plan's size, as it is: checked below, not grown.
            options.max_batch_tokens = p.max_tokens;
            options.plan_holds_context = false;
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
        self.heads[0].dim
    }

    /// Whether the head returns a row per token (else one vector per text).
    pub fn is_per_token(&self) -> bool {
        self.heads[0].per_token
    }

    pub fn head_name(&self) -> &str {
        &self.heads[0].name
    }

    /// `dim` (the full width when `None`) checked against the sizes the model is trained to
    /// be cut to (its Matryoshka dimensions; only the full width for other heads) — the rule
    /// `run --dim`, the server's `dimensions` and the Python package share.
    pub fn matryoshka_dim(&self, dim: Option<usize>) -> Result<usize, Error> {
        let full = self.output_dim();
        let trained: Vec<usize> = if full == gg_loader::gemma::MATRYOSHKA_DIMS[0] {
            gg_loader::gemma::MATRYOSHKA_DIMS.to_vec()
        } else {
            vec![full]
        };
        match dim {
            None => Ok(full),
            Some(d) if trained.contains(&d) => Ok(d),
            Some(d) => Err(Error::BadOption {
                option: "dim",
                value: d.to_string(),
                why: format!(
                    "is not one of {} (the sizes the model's vectors are trained for)",
                    trained.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// The weights the program reads.
    pub(crate) fn weight_table(&self) -> &WeightTable {
        &self.weights
    }

    /// The threads a forward pass runs on.
    pub(crate) fn team(&self) -> &gg_backends::Team {
        &self.team
    }

    /// An arena for a call: one a finished call left, or a new one.
    pub(crate) fn take_arena(&self) -> Arena {
        let spare = self.arenas.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| self.program.new_arena())
    }

    /// Keep a call's arena for the next call.
    pub(crate) fn return_arena(&self, arena: Arena) {
        self.arenas.lock().unwrap_or_else(|e| e.into_inner()).push(arena);
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
