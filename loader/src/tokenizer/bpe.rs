//! Score-ordered BPE over one text fragment, O(n log n).
//!
//! The fragment starts as one symbol per character. A max-heap holds every adjacent pair
//! whose concatenation is a vocabulary piece, keyed by that piece's score (ties: leftmost
//! first, as SentencePiece and llama.cpp do). Popping the best pair merges it in a linked
//! list and pushes the (at most two) new neighbour pairs; stale heap entries are recognised
//! by the symbol ids they recorded. Characters without a piece fall back to byte tokens.

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

/// A mergeable adjacent pair, 16 bytes (the heap is the hot data structure on long inputs).
/// Ordered by `key`: higher score first, then the leftmost.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// Score as order-preserving bits (high half), then `!left` (low half).
    key: u64,
    /// The two symbols' ids when queued (left high, right low): the pair is stale when
    /// either side has merged since. (A symbol's right neighbour only changes when the
    /// symbol itself merges, so the ids identify the pair.)
    ids: u64,
}

impl Candidate {
    fn left(&self) -> u32 {
        !(self.key as u32)
    }
    fn left_id(&self) -> u32 {
        (self.ids >> 32) as u32
    }
    fn right_id(&self) -> u32 {
        self.ids as u32
    }
}

/// f32 bits mapped so that unsigned order is numeric order (as `f32::total_cmp`).
#[inline]
fn ordered_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 1 << 31
    }
}

/// Reusable buffers, so encoding many texts does not allocate per text.
#[derive(Default)]
pub struct BpeScratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
}

impl BpeScratch {
    /// The merge candidate of `left` and its right neighbour, if their join is a piece.
    fn candidate(&self, vocab: &Vocab, left: u32) -> Option<Candidate> {
        if left == NIL {
            return None;
        }
        let l = self.symbols[left as usize];
        if l.next == NIL {
            return None;
        }
        let r = self.symbols[l.next as usize];
        if l.id >= DEAD || r.id >= DEAD {
            return None;
        }
        let merged = vocab.merge(l.id, r.id)?;
        Some(Candidate {
            key: (u64::from(ordered_bits(vocab.score(merged))) << 32) | u64::from(!left),
            ids: (u64::from(l.id) << 32) | u64::from(r.id),
        })
    }

    fn push_pair(&mut self, vocab: &Vocab, left: u32) {
        if let Some(c) = self.candidate(vocab, left) {
            self.heap.push(c);
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
    // All initial pairs at once: heapify is O(n), reusing the heap's buffer.
    let mut initial = std::mem::take(&mut scratch.heap).into_vec();
    initial.clear();
    initial.extend((0..n as u32 - 1).filter_map(|i| scratch.candidate(vocab, i)));
    scratch.heap = BinaryHeap::from(initial);

    while let Some(c) = scratch.heap.pop() {
        let left = c.left();
        let l = scratch.symbols[left as usize];
        if l.id != c.left_id() || l.next == NIL || scratch.symbols[l.next as usize].id != c.right_id() {
            continue; // stale: one side has merged since this pair was queued
        }
        let right = l.next;
        let r = scratch.symbols[right as usize];
        let merged = vocab.merge(l.id, r.id).expect("queued pairs merge");
        {
            let s = &mut scratch.symbols[left as usize];
            s.id = merged;
            s.len += r.len;
            s.next = r.next;
        }
        scratch.symbols[right as usize].id = DEAD;
        if r.next != NIL {
            scratch.symbols[r.next as usize].prev = left;
        }
        scratch.push_pair(vocab, l.prev);
        scratch.push_pair(vocab, left);
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
