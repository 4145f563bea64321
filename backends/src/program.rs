//! The program lowering makes and the executor runs: resolved steps over fixed arena offsets,
//! the arena, batches. Running is a plain loop that allocates nothing: the arena is made once
//! ([`Program::new_arena`]), inputs are copied into it, and every step calls its kernel on views
//! of its operands that [`Operands::check`] proved sound when the step was made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gg_graph::{NodeId, Plan};
use gg_ops::{DType, InputKind, Rows};

use crate::backend::Precision;
use crate::kernels::{Par, SeqSpan};
use crate::weights::{PackSpec, WeightTable};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecError {
    #[error("batch of {tokens} tokens exceeds the plan's {max} tokens")]
    TooManyTokens { tokens: usize, max: usize },
    #[error("batch of {seqs} sequences exceeds the plan's {max} sequences")]
    TooManySeqs { seqs: usize, max: usize },
    #[error("malformed batch: {0}")]
    BadBatch(String),
    #[error("token id {id} at batch row {row} is outside the {vocab}-row embedding table")]
    TokenOutOfRange { row: usize, id: i32, vocab: usize },
    #[error("packed weight {index} is missing: the weight table was not prepared for this program")]
    NotPrepared { index: usize },
    #[error("the arena has {got} bytes, the program needs {want} (made for another program?)")]
    WrongArena { got: usize, want: usize },
}

/// One batch: token ids and positions per row, and where each sequence is.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub ids: &'a [i32],
    pub positions: &'a [i32],
    pub seqs: &'a [SeqSpan],
    /// For every row, the index of its sequence.
    pub row_seq: &'a [u32],
}

impl Batch<'_> {
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// Check the batch is self-consistent (spans tile the rows in order, positions count
    /// from 0 inside each span) without allocating.
    fn validate(&self) -> Result<(), ExecError> {
        let t = self.ids.len();
        if self.positions.len() != t || self.row_seq.len() != t {
            return Err(ExecError::BadBatch(format!(
                "{t} ids, {} positions, {} row→sequence entries",
                self.positions.len(),
                self.row_seq.len()
            )));
        }
        let mut next = 0;
        for (s, span) in self.seqs.iter().enumerate() {
            if span.start != next || span.len == 0 {
                return Err(ExecError::BadBatch(format!(
                    "sequence {s} spans rows {}..+{}",
                    span.start, span.len
                )));
            }
            for r in span.start..span.start + span.len {
                if r >= t || self.row_seq[r] as usize != s || self.positions[r] as usize != r - span.start {
                    return Err(ExecError::BadBatch(format!(
                        "row {r} does not belong to sequence {s} as laid out"
                    )));
                }
            }
            next += span.len;
        }
        if next != t {
            return Err(ExecError::BadBatch(format!("sequences cover {next} of {t} rows")));
        }
        Ok(())
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CacheLine([u8; 64]);

/// Scratch memory for one running batch: the planned arena, bytes on cache-line boundaries.
pub struct Arena {
    lines: Vec<CacheLine>,
}

impl Arena {
    fn new(bytes: usize) -> Arena {
        Arena {
            lines: vec![CacheLine([0; 64]); bytes.div_ceil(64)],
        }
    }

    pub fn bytes(&self) -> usize {
        self.lines.len() * 64
    }
}

/// A value in the arena as a step sees it: where it starts, its element type and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Val {
    /// Bytes from the arena's start (a multiple of 64).
    pub offset: usize,
    pub dtype: DType,
    pub rows: Rows,
    pub cols: usize,
}

impl Val {
    pub fn elements(&self, tokens: usize, seqs: usize) -> usize {
        let rows = match self.rows {
            Rows::Tokens => tokens,
            Rows::Seqs => seqs,
            Rows::Fixed(n) => n,
        };
        rows * self.cols
    }

    fn bytes(&self, tokens: usize, seqs: usize) -> usize {
        self.elements(tokens, seqs) * self.dtype.block_bytes()
    }
}

/// Most values a step reads.
pub const MAX_READS: usize = 12;

/// What one step reads and writes in the arena, checked against the plan by [`Operands::check`]
/// (the only way to make one): the executor hands the step views of exactly these.
#[derive(Clone, Copy, Debug)]
pub struct Operands {
    reads: [Option<Val>; MAX_READS],
    out: Val,
    scratch: Option<Val>,
}

impl Operands {
    /// Check a step's operands at the plan's largest batch: every value inside the arena, and
    /// what it writes (`out`, `scratch`) overlapping nothing else it touches. An in-place step
    /// reads its input through `out` and lists it in neither `reads` nor here.
    pub fn check(out: Val, reads: &[Val], scratch: Option<Val>, plan: &Plan) -> Result<Operands, String> {
        if reads.len() > MAX_READS {
            return Err(format!("{} inputs, more than a step takes ({MAX_READS})", reads.len()));
        }
        let range = |v: Val| (v.offset, v.offset + v.bytes(plan.max_tokens, plan.max_seqs));
        // (range, written)
        let mut ranges = vec![(range(out), true)];
        ranges.extend(scratch.map(|s| (range(s), true)));
        ranges.extend(reads.iter().map(|&v| (range(v), false)));
        for (i, &(r, written)) in ranges.iter().enumerate() {
            if r.1 > plan.arena_bytes || r.0 % 64 != 0 {
                return Err("a value lies outside the arena or off a cache line".into());
            }
            let clash = ranges[..i]
                .iter()
                .any(|&(s, w)| (w || written) && s.0 < r.1 && r.0 < s.1);
            if clash {
                return Err("the plan overlaps what the step writes with what it reads".into());
            }
        }
        let mut all = [None; MAX_READS];
        for (slot, &v) in all.iter_mut().zip(reads) {
            *slot = Some(v);
        }
        Ok(Operands {
            reads: all,
            out,
            scratch,
        })
    }
}

/// A running step's operands: the values it reads (in the order lowering listed them), its
/// output, its scratch (empty without one). Byte views; [`f32s`] and friends type them.
pub struct Views<'a> {
    pub reads: [&'a [u8]; MAX_READS],
    pub out: &'a mut [u8],
    pub scratch: &'a mut [u8],
}

/// Bytes of the arena as f32 (every value starts on a cache line and holds whole elements).
pub fn f32s(bytes: &[u8]) -> &[f32] {
    bytemuck::cast_slice(bytes)
}

pub fn f32s_mut(bytes: &mut [u8]) -> &mut [f32] {
    bytemuck::cast_slice_mut(bytes)
}

pub fn i32s(bytes: &[u8]) -> &[i32] {
    bytemuck::cast_slice(bytes)
}

pub fn u32s_mut(bytes: &mut [u8]) -> &mut [u32] {
    bytemuck::cast_slice_mut(bytes)
}

/// What a step reads besides its operands: the weights, the batch, the threads.
pub struct Ctx<'a> {
    pub tokens: usize,
    pub seqs: usize,
    pub batch: &'a Batch<'a>,
    pub weights: &'a WeightTable,
    pub par: Par,
}

/// A step's kernel bound to its operands.
pub type RunFn = Box<dyn Fn(&Ctx<'_>, Views<'_>) -> Result<(), ExecError> + Send + Sync>;

/// One resolved step: a kernel bound to its operands.
pub struct Step {
    pub node: NodeId,
    /// The kernel it runs (`avx2.matmul<q8_0>`, `scalar.rms_norm`, …).
    pub kernel: String,
    pub operands: Operands,
    pub run: RunFn,
}

/// Where a graph output is.
#[derive(Clone, Copy, Debug)]
pub struct OutputSlot {
    pub node: NodeId,
    pub value: Val,
}

impl OutputSlot {
    pub fn cols(&self) -> usize {
        self.value.cols
    }
}

/// A graph lowered for one backend tier and one batch size.
pub struct Program {
    pub(crate) steps: Vec<Step>,
    pub(crate) packs: Vec<PackSpec>,
    /// Weights no step reads except through their packed copies.
    pub(crate) repacked_only: Vec<gg_ops::WeightId>,
    pub(crate) precision: Precision,
    pub(crate) inputs: Vec<(InputKind, Operands)>,
    pub(crate) outputs: Vec<OutputSlot>,
    pub(crate) plan: Plan,
    pub(crate) backend: &'static str,
}

impl Program {
    pub fn max_tokens(&self) -> usize {
        self.plan.max_tokens
    }

    pub fn max_seqs(&self) -> usize {
        self.plan.max_seqs
    }

    pub fn arena_bytes(&self) -> usize {
        self.plan.arena_bytes
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn outputs(&self) -> &[OutputSlot] {
        &self.outputs
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn n_steps(&self) -> usize {
        self.steps.len()
    }

    /// The weights to repack before running, in the order steps refer to them.
    pub fn packs(&self) -> &[PackSpec] {
        &self.packs
    }

    /// Weights that only packed kernels read: once repacked, the originals may leave memory.
    pub fn repacked_only(&self) -> &[gg_ops::WeightId] {
        &self.repacked_only
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The tier the program was lowered for.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Repack the weights this program's kernels read packed (see
    /// [`WeightTable::prepare`]).
    pub fn prepare(&self, weights: &mut WeightTable) -> Result<crate::weights::Prepared, crate::weights::WeightError> {
        weights.prepare(&self.packs, &self.repacked_only)
    }

    /// A zeroed arena for this program (the one allocation of a run).
    pub fn new_arena(&self) -> Arena {
        Arena::new(self.arena_bytes())
    }

    /// Output `i` of the last batch run in `arena`: `rows × cols` values.
    pub fn output<'a>(&self, arena: &'a Arena, i: usize, tokens: usize, seqs: usize) -> &'a [f32] {
        let o = self.outputs[i];
        let bytes: &[u8] = bytemuck::cast_slice(&arena.lines);
        let n = o
            .value
            .elements(tokens.min(self.max_tokens()), seqs.min(self.max_seqs()));
        f32s(&bytes[o.value.offset..o.value.offset + n * 4])
    }

    /// Run one batch. Allocates nothing.
    pub fn run(&self, weights: &WeightTable, batch: &Batch<'_>, arena: &mut Arena, par: Par) -> Result<(), ExecError> {
        self.run_timed(weights, batch, arena, par, None)
    }

    /// [`Program::run`], adding each step's wall time to `times` when given.
    pub fn run_timed(
        &self,
        weights: &WeightTable,
        batch: &Batch<'_>,
        arena: &mut Arena,
        par: Par,
        times: Option<&StepTimes>,
    ) -> Result<(), ExecError> {
        let (t, s) = (batch.tokens(), batch.seqs.len());
        if t > self.max_tokens() {
            return Err(ExecError::TooManyTokens {
                tokens: t,
                max: self.max_tokens(),
            });
        }
        if s > self.max_seqs() {
            return Err(ExecError::TooManySeqs {
                seqs: s,
                max: self.max_seqs(),
            });
        }
        batch.validate()?;
        if arena.bytes() < self.arena_bytes() {
            return Err(ExecError::WrongArena {
                got: arena.bytes(),
                want: self.arena_bytes(),
            });
        }
        let ctx = Ctx {
            tokens: t,
            seqs: s,
            batch,
            weights,
            par,
        };
        let base = arena.lines.as_mut_ptr() as *mut u8;
        for &(kind, ref io) in &self.inputs {
            let v = views(base, io, t, s);
            i32s_mut(v.out).copy_from_slice(match kind {
                InputKind::TokenIds => batch.ids,
                InputKind::Positions => batch.positions,
            });
        }
        match times {
            None => {
                for step in &self.steps {
                    (step.run)(&ctx, views(base, &step.operands, t, s))?;
                }
            }
            Some(times) => {
                for (step, nanos) in self.steps.iter().zip(&times.nanos) {
                    let t0 = Instant::now();
                    (step.run)(&ctx, views(base, &step.operands, t, s))?;
                    nanos.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                times.runs.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn i32s_mut(bytes: &mut [u8]) -> &mut [i32] {
    bytemuck::cast_slice_mut(bytes)
}

/// The views of one step's operands for a batch of `tokens` in `seqs` sequences, made while the
/// step runs and dropped before the next is made.
fn views<'a>(base: *mut u8, io: &Operands, tokens: usize, seqs: usize) -> Views<'a> {
    let len = |v: Val| v.bytes(tokens, seqs);
    // SAFETY: `io` was made by `Operands::check` against this program's plan, so every value lies
    // inside the arena (`base` points at `arena_bytes` bytes, checked by `run_timed`; a batch
    // within the plan's tokens and sequences needs no more than the plan's largest) and on a
    // cache line, and `out`/`scratch` overlap nothing else of the step. The arena is borrowed
    // mutably by the run for as long as these views live, and a step's views are made once and
    // dropped before the next step's: no other reference to these bytes exists meanwhile.
    unsafe {
        let reads = io
            .reads
            .map(|r| r.map_or(&[][..], |v| std::slice::from_raw_parts(base.add(v.offset), len(v))));
        Views {
            reads,
            out: std::slice::from_raw_parts_mut(base.add(io.out.offset), len(io.out)),
            scratch: io.scratch.map_or(&mut [][..], |v| {
                std::slice::from_raw_parts_mut(base.add(v.offset), len(v))
            }),
        }
    }
}

/// Wall time spent in each step of a program, added up over the runs that were given it.
/// Atomic counters made once: timing a run allocates nothing.
pub struct StepTimes {
    nanos: Vec<AtomicU64>,
    runs: AtomicU64,
}

impl StepTimes {
    pub fn new(program: &Program) -> StepTimes {
        StepTimes {
            nanos: (0..program.n_steps()).map(|_| AtomicU64::new(0)).collect(),
            runs: AtomicU64::new(0),
        }
    }

    /// Nanoseconds spent in step `i`.
    pub fn step_nanos(&self, i: usize) -> u64 {
        self.nanos[i].load(Ordering::Relaxed)
    }

    /// Forward passes timed.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}
