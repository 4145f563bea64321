//! Embedding texts: prompts, tokenization, packing into token batches, running the plan,
//! Matryoshka truncation, cancellation and deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gg_backends::{Arena, Batch, Par, SeqSpan};
use gg_loader::tokenizer::EncodeOptions;

use crate::error::Error;
use crate::inputs::{Input, Prompt, Sequence, Sequencer, Truncation};
use crate::model::Model;
use crate::output::{renormalize, Embeddings, HeadRows, TextEmbedding};

/// Cancels a running [`Model::embed`] call from another thread (checked between batches).
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options of one [`Model::embed`] call. The default reproduces sentence-transformers'
/// `model.encode(texts)` (no prompt, full dimension).
#[derive(Clone, Debug, Default)]
pub struct EmbedOptions {
    pub prompt: Option<Prompt>,
    /// Matryoshka: keep the first `dim` values of each vector and re-normalize
    /// (EmbeddingGemma is trained for 768, 512, 256 and 128).
    pub dim: Option<usize>,
    /// Tokens per batch (default and maximum: the model's `max_batch_tokens`). A text
    /// longer than this runs in a batch of its own.
    pub batch_tokens: Option<usize>,
    /// Tokenizer options (control literals, Unicode normalization). Truncation to the
    /// context length always applies.
    pub encode: EncodeOptions,
    pub cancel: Option<CancelToken>,
    pub deadline: Option<Instant>,
    /// Threads for this call (default: the model's team, `ModelOptions::threads`). A
    /// different count makes a team of threads for the call.
    pub threads: Option<usize>,
    /// Add every step's wall time to this profile ([`Model::new_profile`]).
    pub profile: Option<Arc<Profile>>,
    /// Most texts packed into one forward pass (default: as many as the token budget and the
    /// plan allow; 1 runs each text alone).
    pub batch_texts: Option<usize>,
    /// What a text longer than the context gets.
    pub truncation: Truncation,
    /// Record every forward pass (texts, tokens, wall time) here.
    pub passes: Option<Arc<PassLog>>,
    /// Longest text accepted, prompt included (default [`crate::MAX_TEXT_BYTES`]).
    pub max_text_bytes: Option<usize>,
}

/// One forward pass of an `embed` call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassInfo {
    pub texts: usize,
    pub tokens: usize,
    pub seconds: f64,
}

/// The forward passes of `embed` calls, appended as they finish (for statistics).
#[derive(Debug, Default)]
pub struct PassLog(std::sync::Mutex<Vec<PassInfo>>);

impl PassLog {
    pub fn new() -> Arc<PassLog> {
        Arc::default()
    }

    /// The passes so far, leaving the log empty.
    pub fn take(&self) -> Vec<PassInfo> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, pass: PassInfo) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(pass);
    }
}

/// Where the time of forward passes went, per step; [`Model::profile_report`] sums it by op
/// kind and by layer.
pub struct Profile {
    times: gg_backends::StepTimes,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Profile({} runs)", self.times.runs())
    }
}

/// The settled parameters of one `embed` call.
#[derive(Clone, Copy)]
struct Call<'a> {
    budget: usize,
    batch_texts: usize,
    dim: usize,
    options: &'a EmbedOptions,
    team: &'a gg_backends::Team,
}

/// Sequence `s`'s rows of a head's output (one per token, or its one row) — refused when not
/// finite: an index poisoned by a NaN/Inf is worse than an error.
fn seq_rows<'a>(
    result: &'a [f32],
    head: &crate::HeadInfo,
    s: usize,
    span: SeqSpan,
    index: usize,
) -> Result<(usize, &'a [f32]), Error> {
    let (rows, first) = if head.per_token { (span.len, span.start) } else { (1, s) };
    let src = &result[first * head.dim..(first + rows) * head.dim];
    if !src.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFiniteOutput { index });
    }
    Ok((rows, src))
}

impl Model {
    /// A scratch arena for [`Model::forward`] (the only allocation of a run).
    pub fn new_arena(&self) -> Arena {
        self.program().new_arena()
    }

    /// Run one prepared batch in `arena`, on the model's threads. Allocates nothing.
    pub fn forward(&self, batch: &Batch<'_>, arena: &mut Arena) -> Result<(), Error> {
        self.forward_on(self.team(), batch, arena, None)
    }

    fn forward_on(
        &self,
        team: &gg_backends::Team,
        batch: &Batch<'_>,
        arena: &mut Arena,
        profile: Option<&Profile>,
    ) -> Result<(), Error> {
        let times = profile.map(|p| &p.times);
        let threads = team.threads();
        let mut run = || {
            self.program()
                .run_timed(self.weight_table(), batch, arena, Par { threads }, times)
        };
        // One thread runs on the caller's without the team: concurrent calls on a one-thread
        // model (one per server worker or Python thread) then run side by side instead of
        // taking turns.
        if threads <= 1 {
            run()?;
        } else {
            team.install(run)?;
        }
        Ok(())
    }

    /// An empty profile for this model's program (pass it in [`EmbedOptions::profile`]).
    pub fn new_profile(&self) -> Arc<Profile> {
        Arc::new(Profile {
            times: gg_backends::StepTimes::new(self.program()),
        })
    }

    /// The profile as a table: time per kernel, then per layer, with shares of the total.
    pub fn profile_report(&self, profile: &Profile) -> String {
        use std::collections::BTreeMap;
        use std::fmt::Write;
        let steps = self.program().steps();
        let total: u64 = (0..steps.len()).map(|i| profile.times.step_nanos(i)).sum();
        let mut by_kernel: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        let mut by_layer: BTreeMap<Option<usize>, u64> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            let ns = profile.times.step_nanos(i);
            let k = by_kernel.entry(step.kernel.as_str()).or_default();
            k.0 += ns;
            k.1 += 1;
            *by_layer.entry(self.graph().node(step.node).layer).or_default() += ns;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        let pct = |ns: u64| 100.0 * ns as f64 / total.max(1) as f64;
        let mut out = format!(
            "profile: {} forward passes, {:.1} ms in {} steps ({} backend)\n",
            profile.times.runs(),
            ms(total),
            steps.len(),
            self.program().backend()
        );
        let mut kernels: Vec<_> = by_kernel.into_iter().collect();
        kernels.sort_by_key(|(_, (ns, _))| std::cmp::Reverse(*ns));
        let _ = writeln!(out, "  {:<34} {:>6} {:>10} {:>6}", "kernel", "steps", "ms", "%");
        for (k, (ns, n)) in kernels {
            let _ = writeln!(out, "  {k:<34} {n:>6} {:>10.1} {:>5.1}%", ms(ns), pct(ns));
        }
        let _ = writeln!(out, "  {:<34} {:>6} {:>10} {:>6}", "layer", "", "ms", "%");
        for (layer, ns) in by_layer {
            let name = layer.map_or("(outside layers)".to_string(), |l| format!("layer {l}"));
            let _ = writeln!(out, "  {name:<34} {:>6} {:>10.1} {:>5.1}%", "", ms(ns), pct(ns));
        }
        out
    }

    /// The head's output for the batch last run in `arena`: one row per sequence (or per
    /// token, for per-token heads) of `output_dim` values.
    pub fn output<'a>(&self, arena: &'a Arena, batch: &Batch<'_>) -> &'a [f32] {
        self.program().output(arena, 0, batch.tokens(), batch.seqs.len())
    }

    /// The rules that turn inputs into sequences for a call with `options` (prompt, tokenizer
    /// options, truncation), within the model's context.
    pub fn sequencer<'a>(&'a self, options: &'a EmbedOptions) -> Result<Sequencer<'a>, Error> {
        Ok(Sequencer {
            tokenizer: self.tokenizer(),
            context: Some(self.config().context_length),
            prompt: match &options.prompt {
                Some(p) => p.text()?,
                None => "",
            },
            encode: options.encode,
            truncation: options.truncation,
            max_text_bytes: options.max_text_bytes.unwrap_or(crate::MAX_TEXT_BYTES),
        })
    }

    /// Embed texts. Results come back in input order; a text's vector does not depend on
    /// the other texts of the call.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], options: &EmbedOptions) -> Result<Embeddings, Error> {
        self.embed_inputs(texts.iter().map(|t| Input::Text(t.as_ref())), options)
    }

    /// Embed texts and token arrays ([`Input`]), turned into sequences by [`Model::sequencer`]'s
    /// rules: every length is checked before any compute.
    pub fn embed_inputs<'i>(
        &self,
        inputs: impl IntoIterator<Item = Input<'i>>,
        options: &EmbedOptions,
    ) -> Result<Embeddings, Error> {
        let checked = self.check_options(options)?;
        let seqs = self.sequencer(options)?.sequences(inputs)?;
        self.run_sequences(&seqs, options, checked)
    }

    /// Embed sequences made by [`Model::sequencer`] (the server makes them as requests arrive,
    /// then batches them). A sequence longer than the plan or holding an id outside the
    /// vocabulary is an error naming it.
    pub fn embed_sequences(&self, seqs: &[Sequence], options: &EmbedOptions) -> Result<Embeddings, Error> {
        let checked = self.check_options(options)?;
        let vocab = self.tokenizer().vocab_size();
        for (index, seq) in seqs.iter().enumerate() {
            if let Some(&id) = seq.ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfVocabulary { index, id, vocab });
            }
        }
        self.run_sequences(seqs, options, checked)
    }

    /// Sequences within the plan, then run.
    fn run_sequences(
        &self,
        seqs: &[Sequence],
        options: &EmbedOptions,
        checked: (usize, usize, usize),
    ) -> Result<Embeddings, Error> {
        let max = self.program().max_tokens();
        for (index, seq) in seqs.iter().enumerate() {
            if seq.ids.is_empty() {
                return Err(Error::EmptyText { index });
            }
            if seq.ids.len() > max {
                return Err(Error::TextTooLong {
                    index,
                    tokens: seq.ids.len(),
                    max,
                });
            }
        }
        self.run_encoded(seqs, options, checked)
    }

    /// `options` checked against the model (`batch_tokens`, `dim`, `batch_texts`): the rule every
    /// call applies, for callers who want to refuse bad options before any input is read.
    pub fn check_embed_options(&self, options: &EmbedOptions) -> Result<(), Error> {
        self.check_options(options).map(|_| ())
    }

    /// `batch_tokens`, `dim` and `batch_texts` checked against the model.
    fn check_options(&self, options: &EmbedOptions) -> Result<(usize, usize, usize), Error> {
        let range = |option: &'static str, value: usize, max: usize| {
            if value == 0 || value > max {
                Err(Error::BadOption {
                    option,
                    value: value.to_string(),
                    why: format!("must be between 1 and {max}"),
                })
            } else {
                Ok(value)
            }
        };
        let max = self.program().max_tokens();
        let budget = range("batch_tokens", options.batch_tokens.unwrap_or(max), max)?;
        let dim = range("dim", options.dim.unwrap_or(self.output_dim()), self.output_dim())?;
        let max_texts = self.program().max_seqs();
        let batch_texts = range("batch_texts", options.batch_texts.unwrap_or(max_texts), max_texts)?;
        Ok((budget, dim, batch_texts))
    }

    fn run_encoded(
        &self,
        seqs: &[Sequence],
        options: &EmbedOptions,
        (budget, dim, batch_texts): (usize, usize, usize),
    ) -> Result<Embeddings, Error> {
        let call_team = match options.threads {
            Some(0) => return Err(Error::InvalidOption("threads must be at least 1".into())),
            Some(n) if n != self.threads() => Some(crate::model::new_team(crate::model::thread_count(n)?)?),
            _ => None,
        };
        let team = call_team.as_ref().unwrap_or(self.team());
        let mut arena = self.take_arena();
        let call = Call {
            budget,
            batch_texts,
            dim,
            options,
            team,
        };
        let result = self.run_batches(seqs, &call, &mut arena);
        self.return_arena(arena);
        result
    }

    fn run_batches(&self, seqs: &[Sequence], call: &Call<'_>, arena: &mut Arena) -> Result<Embeddings, Error> {
        let Call {
            budget,
            batch_texts,
            dim,
            options,
            team,
        } = *call;
        let mut out = Embeddings {
            items: Vec::with_capacity(seqs.len()),
        };
        let (mut b_ids, mut b_pos, mut b_seqs, mut b_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut next = 0;
        while next < seqs.len() {
            if options.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                return Err(Error::Cancelled {
                    done: Box::new(out),
                    total: seqs.len(),
                });
            }
            if options.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::DeadlineExceeded {
                    done: Box::new(out),
                    total: seqs.len(),
                });
            }
            // Pack texts in input order until the token budget is full; a text longer than
            // the budget (but within the plan) runs alone.
            b_ids.clear();
            b_pos.clear();
            b_seqs.clear();
            b_rows.clear();
            let first = next;
            while next < seqs.len()
                && (b_seqs.is_empty() || b_ids.len() + seqs[next].ids.len() <= budget)
                && b_seqs.len() < batch_texts
            {
                let seq = &seqs[next].ids;
                b_seqs.push(SeqSpan {
                    start: b_ids.len(),
                    len: seq.len(),
                });
                for (p, &id) in seq.iter().enumerate() {
                    b_ids.push(id as i32);
                    b_pos.push(p as i32);
                    b_rows.push((b_seqs.len() - 1) as u32);
                }
                next += 1;
            }
            let batch = Batch {
                ids: &b_ids,
                positions: &b_pos,
                seqs: &b_seqs,
                row_seq: &b_rows,
            };
            let started = Instant::now();
            self.forward_on(team, &batch, arena, options.profile.as_deref())?;
            if let Some(log) = &options.passes {
                log.push(PassInfo {
                    texts: b_seqs.len(),
                    tokens: b_ids.len(),
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            let result = self.output(arena, &batch);
            for (s, span) in b_seqs.iter().enumerate() {
                let index = first + s;
                let (rows, src) = seq_rows(result, &self.heads()[0], s, *span, index)?;
                let mut values = Vec::with_capacity(rows * dim);
                for row in src.chunks_exact(self.output_dim()) {
                    let start = values.len();
                    values.extend_from_slice(&row[..dim]);
                    if dim < self.output_dim() {
                        renormalize(&mut values[start..]);
                    }
                }
                // The other heads' rows, as they come (no Matryoshka truncation).
                let mut extra = Vec::with_capacity(self.heads().len() - 1);
                for (h, head) in self.heads().iter().enumerate().skip(1) {
                    let result = self.program().output(arena, h, batch.tokens(), batch.seqs.len());
                    let (rows, src) = seq_rows(result, head, s, *span, index)?;
                    extra.push(HeadRows {
                        values: src.to_vec(),
                        rows,
                        dim: head.dim,
                    });
                }
                out.items.push(TextEmbedding {
                    values,
                    rows,
                    dim,
                    tokens: span.len,
                    dropped_tokens: seqs[index].dropped,
                    extra,
                });
            }
        }
        Ok(out)
    }
}
