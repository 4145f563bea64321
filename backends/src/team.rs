//! One persistent team of threads per model, instead of a fork-join per operator.
//!
//! A forward pass runs ~200 parallel steps; with a fork-join pool each of them pays a wake-up
//! and a join through the pool's queues. A team keeps its workers for the model's life: the
//! caller publishes a step (a chunk count and a closure) by bumping one atomic word, workers
//! that spin on that word pick it up within a few hundred nanoseconds, and every thread —
//! the caller included — claims chunks from the same word until none are left. Workers spin
//! for a short while after each step (the next one follows within microseconds inside a pass)
//! and then park on a condition variable, so an idle model costs no CPU.
//!
//! A team has exactly `threads` threads working: the caller and `threads - 1` workers.
//! Which thread runs which chunk never changes a result: a chunk's output depends only on its
//! index (the kernels' contract, tested by the batch- and thread-invariance tests).
//!
//! Kernels reach the team through [`parallel_for`], which uses the team the calling thread
//! [installed](Team::install) and runs serially elsewhere (inside a chunk, or with no team).

use std::cell::{Cell, UnsafeCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next step before it parks. Steps inside a pass follow
/// each other within microseconds; between passes (an idle server) workers sleep.
const SPIN_FOR: Duration = Duration::from_micros(200);

/// Chunks one step can have (the claim word's chunk fields are 16 bits); more work units are
/// grouped into this many chunks.
const MAX_CHUNKS: usize = 0xffff;

/// A step's closure with its lifetime erased: valid while its step has unclaimed or running
/// chunks, which the caller waits out before returning.
type JobPtr = *const (dyn Fn(usize) + Sync);

/// The claim word: `epoch << 32 | next << 16 | chunks`. Every step gets a new epoch; a thread
/// claims chunk `next` by a compare-exchange that also proves the step is still the current
/// one (a stale claim fails because the epoch moved on).
fn word(epoch: u64, next: usize, chunks: usize) -> u64 {
    (epoch << 32) | ((next as u64) << 16) | chunks as u64
}

fn fields(w: u64) -> (u64, usize, usize) {
    (w >> 32, ((w >> 16) & 0xffff) as usize, (w & 0xffff) as usize)
}

struct Shared {
    claim: AtomicU64,
    /// The current step's closure; written by the caller only while no step is open.
    job: UnsafeCell<Option<JobPtr>>,
    /// Chunks of the current step finished (by any thread).
    completed: AtomicUsize,
    /// A chunk of the current step panicked.
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    /// Workers that have started.
    started: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    /// How long a worker spins before parking: [`SPIN_FOR`], or nothing when the team has
    /// more threads than the machine has cores (spinning would then steal the core the
    /// thread it waits for needs).
    spin_for: Duration,
}

// SAFETY: `job` is written only by the thread that owns the team's `busy` lock while no chunk
// can be claimed (before the claim word opens a step, after every chunk completed), and read
// only by a thread that has just claimed a chunk of the open step; the claim word's
// release/acquire orders the write before those reads. Everything else is atomic or locked.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw closure pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

impl Shared {
    /// Claim and run chunks of step `epoch` until none are left. Returns at once when the
    /// step is over or another has begun.
    fn work(&self, epoch: u64) {
        let mut w = self.claim.load(Ordering::Acquire);
        loop {
            let (e, next, chunks) = fields(w);
            if e != epoch || next >= chunks {
                return;
            }
            match self
                .claim
                .compare_exchange_weak(w, word(e, next + 1, chunks), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: we hold chunk `next` of the open step, so the caller is still
                    // waiting for it: the closure it published is alive and not rewritten.
                    let job = unsafe { (*self.job.get()).expect("an open step has a job") };
                    // SAFETY: as above, the pointee outlives this call.
                    let run = || unsafe { (*job)(next) };
                    if panic::catch_unwind(AssertUnwindSafe(run)).is_err() {
                        self.panicked.store(true, Ordering::Relaxed);
                    }
                    self.completed.fetch_add(1, Ordering::Release);
                    w = self.claim.load(Ordering::Acquire);
                }
                Err(now) => w = now,
            }
        }
    }

    /// Wait until a step newer than `seen` is published (or the team stops); its epoch.
    fn next_step(&self, seen: u64) -> Option<u64> {
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            let e = fields(self.claim.load(Ordering::Acquire)).0;
            if e != seen {
                return Some(e);
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || started.elapsed() < self.spin_for {
                std::hint::spin_loop();
                continue;
            }
            // Park. Announce it first, then look once more under the lock: the caller stores
            // the claim word before it reads `sleepers`, so one of the two sees the other.
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            while !self.stop.load(Ordering::SeqCst) && fields(self.claim.load(Ordering::SeqCst)).0 == seen {
                guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            spins = 0;
        }
    }

    fn wake_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }
}

/// `threads` threads (the caller and `threads - 1` workers made once) that run parallel steps.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// One caller at a time: held for the whole [`Team::install`].
    busy: Mutex<()>,
}

thread_local! {
    /// The team this thread installed (set only for the duration of `install`).
    static CURRENT: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Makes a team the calling thread's until dropped, then puts the previous one back (also
/// when a chunk's panic unwinds through).
struct SetCurrent(*const Team);

impl SetCurrent {
    fn to(team: *const Team) -> SetCurrent {
        SetCurrent(CURRENT.with(|c| c.replace(team)))
    }
}

impl Drop for SetCurrent {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

impl Team {
    /// A team of `threads` threads (at least 1; 1 means the caller alone, no workers).
    pub fn new(threads: usize) -> std::io::Result<Team> {
        let threads = threads.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(word(0, 0, 0)),
            job: UnsafeCell::new(None),
            completed: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            spin_for: if threads <= cores { SPIN_FOR } else { Duration::ZERO },
        });
        let mut team = Team {
            shared,
            workers: Vec::with_capacity(threads - 1),
            threads,
            busy: Mutex::new(()),
        };
        for i in 1..threads {
            let shared = Arc::clone(&team.shared);
            let handle = std::thread::Builder::new()
                .name(format!("gemma-graph-{i}"))
                .spawn(move || {
                    shared.started.fetch_add(1, Ordering::Release);
                    let mut seen = 0;
                    while let Some(epoch) = shared.next_step(seen) {
                        seen = epoch;
                        shared.work(epoch);
                    }
                })?;
            team.workers.push(handle);
        }
        // Return with every worker running: a thread still starting up would do its start's
        // work (and allocations) inside the first passes instead of here.
        while team.shared.started.load(Ordering::Acquire) < threads - 1 {
            std::thread::yield_now();
        }
        Ok(team)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `f` with this team as the calling thread's: [`parallel_for`] inside it uses the
    /// team. Callers from several threads take turns (one `install` at a time).
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let _restore = SetCurrent::to(self);
        f()
    }

    /// Run `f(0) … f(chunks - 1)` on the team and return when all are done. Only the thread
    /// that holds `busy` calls this (through `parallel_for`).
    fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        debug_assert!(chunks <= MAX_CHUNKS);
        let shared = &*self.shared;
        let epoch = (fields(shared.claim.load(Ordering::Relaxed)).0 + 1) & 0xffff_ffff;
        // SAFETY: lifetime erasure only; the pointer is dereferenced by chunk claimers, and
        // this function does not return before every chunk has completed.
        let erased: JobPtr = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), JobPtr>(f) };
        // SAFETY: no step is open (the previous `run` waited for all its chunks), so no thread
        // reads `job` now; the claim word's store below publishes the write.
        unsafe { *shared.job.get() = Some(erased) };
        shared.completed.store(0, Ordering::Relaxed);
        shared.panicked.store(false, Ordering::Relaxed);
        shared.claim.store(word(epoch, 0, chunks), Ordering::SeqCst);
        shared.wake_sleepers();
        shared.work(epoch);
        let mut spins = 0u32;
        while shared.completed.load(Ordering::Acquire) < chunks {
            // A worker is finishing its chunk; if it was descheduled, give the core back.
            spins = spins.wrapping_add(1);
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every chunk completed; nobody can claim one of this step any more.
        unsafe { *shared.job.get() = None };
        if shared.panicked.load(Ordering::Relaxed) {
            panic!("a parallel chunk panicked on a gemma-graph worker thread");
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("threads", &self.threads).finish()
    }
}

/// Run `work(0) … work(units - 1)`, on the installed team when this thread has one (units
/// are claimed dynamically, so uneven units balance), else in order on this thread.
pub fn parallel_for(units: usize, work: impl Fn(usize) + Sync) {
    let team = CURRENT.with(|c| c.get());
    if units <= 1 || team.is_null() {
        (0..units).for_each(work);
        return;
    }
    // SAFETY: `CURRENT` is set only inside `Team::install`, which borrows the team for as
    // long as it is set on this thread.
    let team = unsafe { &*team };
    if team.threads <= 1 {
        (0..units).for_each(work);
        return;
    }
    // While the step is open this thread has no team: a `parallel_for` inside a chunk runs
    // serially, as it does on the workers, instead of opening a step over this one.
    let _restore = SetCurrent::to(std::ptr::null());
    if units <= MAX_CHUNKS {
        team.run(units, &work);
    } else {
        let per = units.div_ceil(MAX_CHUNKS);
        team.run(units.div_ceil(per), &|c| {
            (c * per..((c + 1) * per).min(units)).for_each(&work)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_unit_runs_once_on_every_team_size() {
        for threads in 1..=4 {
            let team = Team::new(threads).unwrap();
            for units in [0usize, 1, 2, 3, 17, 1000, MAX_CHUNKS + 5] {
                let hits: Vec<AtomicUsize> = (0..units).map(|_| AtomicUsize::new(0)).collect();
                team.install(|| {
                    parallel_for(units, |u| {
                        hits[u].fetch_add(1, Ordering::Relaxed);
                    })
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {units} units"
                );
            }
        }
    }

    #[test]
    fn many_steps_in_a_row_and_after_parking() {
        let team = Team::new(2).unwrap();
        let total = AtomicUsize::new(0);
        team.install(|| {
            for step in 0..20_000 {
                parallel_for(2 + step % 5, |_| {
                    total.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let expected: usize = (0..20_000).map(|s| 2 + s % 5).sum();
        assert_eq!(total.load(Ordering::Relaxed), expected);
        // Long enough for the worker to park; the next step wakes it.
        std::thread::sleep(SPIN_FOR * 20);
        let seen = Mutex::new(std::collections::HashSet::new());
        team.install(|| {
            parallel_for(64, |_| {
                seen.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(Duration::from_millis(1));
            })
        });
        assert_eq!(seen.lock().unwrap().len(), 2, "both threads took chunks");
    }

    #[test]
    fn nested_calls_run_serially_and_no_team_means_serial() {
        let order = Mutex::new(Vec::new());
        parallel_for(4, |u| order.lock().unwrap().push(u));
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        let team = Team::new(2).unwrap();
        let count = AtomicUsize::new(0);
        team.install(|| {
            parallel_for(8, |_| {
                parallel_for(8, |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                })
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 64);
        // After install, this thread has no team again: units run here, in order.
        let me = std::thread::current().id();
        let threads = Mutex::new(Vec::new());
        parallel_for(6, |u| threads.lock().unwrap().push((u, std::thread::current().id())));
        assert_eq!(*threads.lock().unwrap(), (0..6).map(|u| (u, me)).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_callers_take_turns() {
        let team = Team::new(2).unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..500 {
                        team.install(|| {
                            parallel_for(7, |_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            })
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 500 * 7);
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_and_the_team_survives() {
        let team = Team::new(2).unwrap();
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            team.install(|| {
                parallel_for(16, |u| {
                    if u == 11 {
                        panic!("chunk 11");
                    }
                })
            })
        }));
        assert!(result.is_err());
        let total = AtomicUsize::new(0);
        team.install(|| {
            parallel_for(9, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 9);
    }
}
