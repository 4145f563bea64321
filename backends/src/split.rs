//! How matmul-like kernels share work: threads take disjoint chunks of weight rows (output
//! columns), so each writes only its own columns of the output.

use crate::kernels::Par;
use crate::team::parallel_for;

/// Output pointer shared by threads that write disjoint columns.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(*mut f32);
// SAFETY: threads write disjoint elements (distinct weight rows → distinct columns).
unsafe impl Send for OutPtr {}
// SAFETY: as above; the pointer is only used for disjoint writes.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    pub(crate) fn new(out: &mut [f32]) -> OutPtr {
        OutPtr(out.as_mut_ptr())
    }

    /// A method, so closures capture the whole (Sync) wrapper, not the raw field.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Run `work(j0, j1)` over `0..n` in exactly one chunk per thread (a static split: for
/// kernels whose chunks are equal work and that pay a per-chunk setup, such as quantizing
/// the activations).
pub(crate) fn for_static_chunks(n: usize, par: Par, work: impl Fn(usize, usize) + Sync) {
    for_chunks(n, par.threads.clamp(1, n.max(1)), work)
}

/// `work` over `0..n` in `chunks` equal chunks (the last may be shorter or empty), on the
/// installed team unless there is one chunk.
fn for_chunks(n: usize, chunks: usize, work: impl Fn(usize, usize) + Sync) {
    if chunks <= 1 {
        work(0, n);
    } else {
        let per = n.div_ceil(chunks);
        parallel_for(chunks, |c| work((c * per).min(n), ((c + 1) * per).min(n)));
    }
}

/// Run `work(j0, j1)` over weight rows `0..n`: serially, or in a few chunks per thread on
/// the installed team.
pub(crate) fn for_row_chunks(n: usize, par: Par, work: impl Fn(usize, usize) + Sync) {
    if par.is_serial() || n < 16 {
        work(0, n);
    } else {
        for_chunks(n, (par.threads * 4).min(n), work);
    }
}
