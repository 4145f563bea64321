//! The executor: a plain loop over the steps lowering resolved. Running allocates nothing:
//! the arena is made once (`Program::new_arena`), inputs are copied into it, and every step
//! calls its kernel on typed views of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gg_ops::{DType, InputKind, Rows};

use crate::kernels::{Par, SeqSpan};
use crate::lower::Program;
use crate::weights::WeightTable;

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
    pub(crate) fn new(bytes: usize) -> Arena {
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
pub(crate) struct Val {
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
}

/// What a step reads while it runs: the arena, the weights, the batch and the threads.
pub(crate) struct Ctx<'a> {
    base: *mut u8,
    pub tokens: usize,
    pub seqs: usize,
    pub batch: &'a Batch<'a>,
    pub weights: &'a WeightTable,
    pub par: Par,
}

impl Ctx<'_> {
    /// A value's elements for this batch, as `T`.
    ///
    /// # Safety
    /// `v` must be a value of the program this context runs (lowering checked it lies inside
    /// the arena with `T`'s element type), and no `&mut` view of overlapping bytes may be live
    /// (lowering checked that a step's output never overlaps the other values it reads).
    unsafe fn view<T: bytemuck::Pod>(&self, v: Val) -> &[T] {
        debug_assert_eq!(std::mem::size_of::<T>(), v.dtype.block_bytes());
        // SAFETY: per the contract, in bounds, aligned (64-byte offsets) and not mutably
        // borrowed elsewhere.
        unsafe { std::slice::from_raw_parts(self.base.add(v.offset) as *const T, v.elements(self.tokens, self.seqs)) }
    }

    /// # Safety
    /// As [`Ctx::view`], and no other view of overlapping bytes may be live at all.
    #[allow(clippy::mut_from_ref)]
    unsafe fn view_mut<T: bytemuck::Pod>(&self, v: Val) -> &mut [T] {
        debug_assert_eq!(std::mem::size_of::<T>(), v.dtype.block_bytes());
        // SAFETY: per the contract: in bounds, aligned and exclusive for the step.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(v.offset) as *mut T, v.elements(self.tokens, self.seqs)) }
    }

    /// An f32 value read by a step.
    ///
    /// # Safety
    /// See [`Ctx::view`].
    pub unsafe fn f32s(&self, v: Val) -> &[f32] {
        // SAFETY: forwarded contract.
        unsafe { self.view(v) }
    }

    /// The f32 value a step writes.
    ///
    /// # Safety
    /// See [`Ctx::view_mut`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn f32s_mut(&self, v: Val) -> &mut [f32] {
        // SAFETY: forwarded contract.
        unsafe { self.view_mut(v) }
    }

    /// An i32 value (token ids, positions).
    ///
    /// # Safety
    /// See [`Ctx::view`].
    pub unsafe fn i32s(&self, v: Val) -> &[i32] {
        // SAFETY: forwarded contract.
        unsafe { self.view(v) }
    }

    /// The i32 value a step writes (quantized activations).
    ///
    /// # Safety
    /// See [`Ctx::view_mut`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn i32s_mut(&self, v: Val) -> &mut [i32] {
        // SAFETY: forwarded contract.
        unsafe { self.view_mut(v) }
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

impl Program {
    /// A zeroed arena for this program (the one allocation of a run).
    pub fn new_arena(&self) -> Arena {
        Arena::new(self.arena_bytes())
    }

    /// Output `i` of the last batch run in `arena`: `rows × cols` values.
    pub fn output<'a>(&self, arena: &'a Arena, i: usize, tokens: usize, seqs: usize) -> &'a [f32] {
        let o = self.outputs()[i];
        let bytes: &[u8] = bytemuck::cast_slice(&arena.lines);
        let n = o
            .value
            .elements(tokens.min(self.max_tokens()), seqs.min(self.max_seqs()));
        bytemuck::cast_slice(&bytes[o.value.offset..o.value.offset + n * 4])
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
            base: arena.lines.as_mut_ptr() as *mut u8,
            tokens: t,
            seqs: s,
            batch,
            weights,
            par,
        };
        for &(kind, v) in self.inputs() {
            // SAFETY: input values are planned i32 [T, 1] values; nothing else is borrowed.
            let dst: &mut [i32] = unsafe { ctx.view_mut(v) };
            dst.copy_from_slice(match kind {
                InputKind::TokenIds => batch.ids,
                InputKind::Positions => batch.positions,
            });
        }
        match times {
            None => {
                for step in self.steps() {
                    (step.run)(&ctx)?;
                }
            }
            Some(times) => {
                for (step, nanos) in self.steps().iter().zip(&times.nanos) {
                    let t0 = Instant::now();
                    (step.run)(&ctx)?;
                    nanos.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                times.runs.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
