//! Score-ordered BPE over one text fragment, O(n log n).
//!
//! The fragment starts as one symbol per character. A max-heap holds every adjacent pair
//! whose concatenation is a vocabulary piece, keyed by that piece's score (ties: leftmost
//! first, as SentencePiece and llama.cpp do). Popping the best pair merges it in a linked
//! list and pushes the (at most two) new neighbour pairs; stale heap entries are recognised
//! by the symbol ids they recorded. Characters without a piece fall back to byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// Id of a symbol whose character has no piece (it is emitted as byte tokens).
const NO_PIECE: u32 = u32::MAX;
/// Id of a symbol that was merged into its left neighbour.
const DEAD: u32 = u32::MAX - 1;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
    start: u32,
    len: u32,
}

#[derive(Clone, Copy)]
struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    left_id: u32,
    right_id: u32,
    merged: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Higher score first; on equal scores, the leftmost pair first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Reusable buffers, so encoding many texts does not allocate per text.
#[derive(Default)]
pub struct BpeScratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
}

impl BpeScratch {
    fn push_pair(&mut self, vocab: &Vocab, left: u32) {
        if left == NIL {
            return;
        }
        let l = self.symbols[left as usize];
        if l.next == NIL {
            return;
        }
        let r = self.symbols[l.next as usize];
        if l.id >= DEAD || r.id >= DEAD {
            return;
        }
        if let Some(merged) = vocab.merge(l.id, r.id) {
            self.heap.push(Candidate {
                score: vocab.score(merged),
                left,
                right: l.next,
                left_id: l.id,
                right_id: r.id,
                merged,
            });
        }
    }
}

/// Append the ids of `text` (already normalized: spaces are `▁`) to `out`.
pub fn encode_fragment(vocab: &Vocab, text: &str, scratch: &mut BpeScratch, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    scratch.symbols.clear();
    scratch.heap.clear();
    for (start, ch) in text.char_indices() {
        let i = scratch.symbols.len() as u32;
        scratch.symbols.push(Symbol {
            id: vocab.char_piece(ch).unwrap_or(NO_PIECE),
            prev: if i == 0 { NIL } else { i - 1 },
            next: i + 1,
            start: start as u32,
            len: ch.len_utf8() as u32,
        });
    }
    let n = scratch.symbols.len();
    scratch.symbols[n - 1].next = NIL;
    for i in 0..n as u32 - 1 {
        scratch.push_pair(vocab, i);
    }

    while let Some(c) = scratch.heap.pop() {
        let l = scratch.symbols[c.left as usize];
        if l.id != c.left_id || l.next != c.right || scratch.symbols[c.right as usize].id != c.right_id {
            continue; // stale: one side has merged since this pair was queued
        }
        let r = scratch.symbols[c.right as usize];
        {
            let left = &mut scratch.symbols[c.left as usize];
            left.id = c.merged;
            left.len += r.len;
            left.next = r.next;
        }
        scratch.symbols[c.right as usize].id = DEAD;
        if r.next != NIL {
            scratch.symbols[r.next as usize].prev = c.left;
        }
        scratch.push_pair(vocab, l.prev);
        scratch.push_pair(vocab, c.left);
    }

    let bytes = text.as_bytes();
    let mut i = 0u32;
    while i != NIL {
        let s = scratch.symbols[i as usize];
        if s.id == NO_PIECE {
            for &b in &bytes[s.start as usize..(s.start + s.len) as usize] {
                out.push(vocab.byte_piece(b));
            }
        } else {
            out.push(s.id);
        }
        i = s.next;
    }
}
