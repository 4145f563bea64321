//! Running a batch performs no heap allocation: a counting global allocator watches
//! `Model::forward` (the whole forward pass, on the model's worker threads).

use gg_testing as common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::tiny::{tiny_model_file, TinySpec};
use gemma_graph::{Batch, EmbedOptions, Model, ModelOptions, SentenceTransformersHead, SeqSpan};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in_forward(threads: usize) -> usize {
    let path = tiny_model_file(&format!("noalloc{threads}"), &TinySpec::default());
    let opts = ModelOptions {
        threads,
        ..Default::default()
    };
    let model = Model::load_with(path, &opts, &SentenceTransformersHead).unwrap();
    // Two sequences: 20 tokens (past the sliding window) and 5.
    let lens = [20usize, 5];
    let mut ids = Vec::new();
    let mut pos = Vec::new();
    let mut rows = Vec::new();
    let mut seqs = Vec::new();
    for (s, &len) in lens.iter().enumerate() {
        seqs.push(SeqSpan { start: ids.len(), len });
        for p in 0..len {
            ids.push(2 + (p as i32 * 7) % 250);
            pos.push(p as i32);
            rows.push(s as u32);
        }
    }
    let batch = Batch {
        ids: &ids,
        positions: &pos,
        seqs: &seqs,
        row_seq: &rows,
    };
    let mut arena = model.new_arena();
    // Warm up: thread-pool start, lazily initialised state.
    for _ in 0..3 {
        model.forward(&batch, &mut arena).unwrap();
    }
    let first = model.output(&arena, &batch).to_vec();
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        model.forward(&batch, &mut arena).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(model.output(&arena, &batch), &first[..], "same batch, same output");
    // The high-level call still works (it allocates for tokens and results, not in forward).
    model.embed(&["the world"], &EmbedOptions::default()).unwrap();
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn forward_pass_does_not_allocate() {
    assert_eq!(allocations_in_forward(1), 0, "single thread");
    assert_eq!(allocations_in_forward(2), 0, "two threads");
}
