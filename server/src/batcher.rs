//! Dynamic batching: one queue of texts (as token ids) from every request, one model thread
//! that packs them into token-budget batches.
//!
//! A request's texts enter the queue as separate items, so a large client batch is split
//! across forward passes and small requests share them. Results go back per request in input
//! order. A text's vector does not depend on its batch neighbours (the library's batch
//! invariance), so batching changes latency, never bits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gemma_graph::{EmbedOptions, Model, Sequence};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// How the model thread forms batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// Tokens per forward pass.
    pub max_batch_tokens: usize,
    /// How long the oldest queued text may wait for a batch to fill.
    pub max_wait: Duration,
    /// Tokens the queue holds at most; a request that would pass it is refused (429).
    pub max_queue_tokens: usize,
}

/// A request's finished vectors (full dimension), with its queue and compute time.
#[derive(Debug, Default)]
pub struct Done {
    pub vectors: Vec<Vec<f32>>,
    /// Per text, the outputs of the model's other heads (`serve --head`), one after another;
    /// empty for a model with one head.
    pub extra: Vec<Vec<f32>>,
    pub queue: Duration,
    pub compute: Duration,
}

/// The queue is full: the request would bring it past `max_queue_tokens`.
#[derive(Debug)]
pub struct QueueFull {
    pub queued_tokens: usize,
}

/// A text's answer: its vector, and the other heads' outputs.
type Answer = (Vec<f32>, Vec<f32>);

struct Pending {
    results: Mutex<Vec<Option<Answer>>>,
    remaining: AtomicUsize,
    reply: Mutex<Option<oneshot::Sender<Result<Done, String>>>>,
    cancelled: AtomicBool,
    enqueued: Instant,
    /// When the first of its batches started and the last ended.
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Pending {
    fn complete(&self, slot: usize, vector: Vec<f32>, extra: Vec<f32>, started: Instant, ended: Instant) {
        {
            let mut times = lock(&self.times);
            times.0.get_or_insert(started);
            times.1 = Some(ended);
        }
        lock(&self.results)[slot] = Some((vector, extra));
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let (vectors, extra) = std::mem::take(&mut *lock(&self.results))
                .into_iter()
                .map(Option::unwrap_or_default)
                .unzip();
            let (first, last) = *lock(&self.times);
            let first = first.unwrap_or(started);
            let done = Done {
                vectors,
                extra,
                queue: first.saturating_duration_since(self.enqueued),
                compute: last.unwrap_or(ended).saturating_duration_since(first),
            };
            if let Some(tx) = lock(&self.reply).take() {
                // The client may be gone; nothing to tell then.
                let _ = tx.send(Ok(done));
            }
        }
    }

    fn fail(&self, message: String) {
        if let Some(tx) = lock(&self.reply).take() {
            let _ = tx.send(Err(message));
        }
    }
}

struct Item {
    seq: Sequence,
    slot: usize,
    request: Arc<Pending>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    tokens: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    config: BatchConfig,
    metrics: Arc<Metrics>,
}

/// A submitted request: await [`Ticket::wait`]. Dropping it (the client went away, or the
/// request timed out) drops its texts that have not run yet.
pub struct Ticket {
    rx: Option<oneshot::Receiver<Result<Done, String>>>,
    request: Arc<Pending>,
}

impl Ticket {
    pub async fn wait(mut self) -> Result<Done, String> {
        let rx = self.rx.take().expect("a ticket is awaited once");
        rx.await.unwrap_or_else(|_| Err("the model thread stopped".into()))
        // `self` drops when this future completes or is dropped: either way its texts that
        // have not run are skipped.
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Also after completion: there is nothing left to run then, so it changes nothing.
        self.request.cancelled.store(true, Ordering::Relaxed);
    }
}

/// The queue and its model thread.
pub struct Batcher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Batcher {
    /// Start the model thread. It first runs one warm-up batch, then calls `warm` with its
    /// outcome (a failed warm-up keeps `/health` at 503 naming the error).
    pub fn start(
        model: Arc<Model>,
        config: BatchConfig,
        metrics: Arc<Metrics>,
        warm: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> std::io::Result<Batcher> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            config,
            metrics,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("gemma-graph-batcher".into())
            .spawn(move || {
                let outcome = model.embed(&["warm-up"], &EmbedOptions::default());
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, "warm-up batch failed");
                }
                warm(outcome.map(drop).map_err(|e| e.to_string()));
                worker.run(&model);
            })?;
        Ok(Batcher {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queue a request's texts (sequences made by the model's rules).
    pub fn submit(&self, texts: Vec<Sequence>) -> Result<Ticket, QueueFull> {
        let tokens: usize = texts.iter().map(|s| s.ids.len()).sum();
        let (tx, rx) = oneshot::channel();
        let request = Arc::new(Pending {
            results: Mutex::new(vec![None; texts.len()]),
            remaining: AtomicUsize::new(texts.len()),
            reply: Mutex::new(Some(tx)),
            cancelled: AtomicBool::new(false),
            enqueued: Instant::now(),
            times: Mutex::new((None, None)),
        });
        {
            let mut q = lock(&self.shared.queue);
            if q.closed || q.tokens + tokens > self.shared.config.max_queue_tokens {
                return Err(QueueFull {
                    queued_tokens: q.tokens,
                });
            }
            q.tokens += tokens;
            for (slot, seq) in texts.into_iter().enumerate() {
                q.items.push_back(Item {
                    seq,
                    slot,
                    request: Arc::clone(&request),
                });
            }
            self.shared.metrics.set_queue(q.items.len(), q.tokens);
        }
        self.shared.ready.notify_one();
        Ok(Ticket { rx: Some(rx), request })
    }

    /// Stop taking requests, finish what is queued, and join the model thread.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn run(&self, model: &Model) {
        let budget = self.config.max_batch_tokens.min(model.max_batch_tokens()).max(1);
        loop {
            let batch = match self.next_batch(budget) {
                Some(batch) => batch,
                None => return,
            };
            if batch.is_empty() {
                continue;
            }
            self.run_batch(model, budget, batch);
        }
    }

    /// Wait for texts, then for the batch to fill or the oldest text's wait to end, and take
    /// up to `budget` tokens (at least one text). `None` once closed and drained.
    fn next_batch(&self, budget: usize) -> Option<Vec<Item>> {
        let mut q = lock(&self.queue);
        while q.items.is_empty() {
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        let oldest = q.items.front().map_or_else(Instant::now, |i| i.request.enqueued);
        let deadline = oldest + self.config.max_wait;
        while q.tokens < budget && !q.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = self
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut batch = Vec::new();
        let mut tokens = 0;
        while let Some(front) = q.items.front() {
            let len = front.seq.ids.len();
            if front.request.cancelled.load(Ordering::Relaxed) {
                q.tokens -= len;
                q.items.pop_front();
                self.metrics.dropped_text();
                continue;
            }
            if !batch.is_empty() && tokens + len > budget {
                break;
            }
            tokens += len;
            q.tokens -= len;
            batch.extend(q.items.pop_front());
        }
        self.metrics.set_queue(q.items.len(), q.tokens);
        Some(batch)
    }

    fn run_batch(&self, model: &Model, budget: usize, batch: Vec<Item>) {
        let mut seqs = Vec::with_capacity(batch.len());
        let mut owners = Vec::with_capacity(batch.len());
        for item in batch {
            seqs.push(item.seq);
            owners.push((item.slot, item.request));
        }
        let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
        let started = Instant::now();
        for (_, request) in &owners {
            self.metrics
                .observe_queue(started.saturating_duration_since(request.enqueued));
        }
        let options = EmbedOptions {
            batch_tokens: Some(budget),
            ..EmbedOptions::default()
        };
        let result = model.embed_sequences(&seqs, &options);
        let ended = Instant::now();
        self.metrics.observe_batch(seqs.len(), tokens, ended - started);
        match result {
            Ok(out) => {
                let heads = model.heads().len();
                for (k, (slot, request)) in owners.into_iter().enumerate() {
                    let extra = (1..heads).flat_map(|h| out.head(h, k).iter().copied()).collect();
                    // All of head 0's rows: one for a per-text head, one per token for a
                    // per-token one (`/embed_all`'s model).
                    request.complete(slot, out.head(0, k).to_vec(), extra, started, ended);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, texts = seqs.len(), "batch failed");
                for (_, request) in owners {
                    request.fail(e.to_string());
                }
            }
        }
    }
}
