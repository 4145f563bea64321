//! The static buffer plan: one arena, an offset for every value.
//!
//! ggml-alloc's algorithm: walk the graph in execution order, counting the remaining uses
//! of every value; give each output a buffer from a best-fit free list (or its input's
//! buffer, in place, when the op allows it and that input has no later reader); free a
//! buffer after its last reader has run. Graph outputs are never freed. Sizes are those of
//! the largest batch the plan is made for; smaller batches use a prefix of each buffer.

use std::collections::HashMap;

use gg_ops::Op;
use serde::{Deserialize, Serialize};

use crate::ir::{Graph, GraphError, NodeId};

/// Buffers start on cache-line boundaries.
pub const ALIGN: usize = 64;

/// Where a value lives in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub offset: usize,
    pub bytes: usize,
}

/// One planned value, for dumps and checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedValue {
    pub node: NodeId,
    pub slot: Slot,
    /// Step that writes it.
    pub first: usize,
    /// Step of its last reader (`usize::MAX` for graph outputs).
    pub last: usize,
    /// It reuses the buffer of its input 0.
    pub in_place: bool,
}

/// The plan for a graph at a maximum batch size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub max_tokens: usize,
    pub max_seqs: usize,
    /// Non-weight nodes in execution order.
    pub order: Vec<NodeId>,
    pub values: Vec<PlannedValue>,
    pub arena_bytes: usize,
    /// The most bytes live at any one step.
    pub peak_live_bytes: usize,
    /// Bytes of every value added up (what allocating each value separately would take).
    pub total_value_bytes: usize,
    index: HashMap<NodeId, usize>,
}

impl Plan {
    pub fn slot(&self, id: NodeId) -> Option<Slot> {
        self.index.get(&id).map(|&i| self.values[i].slot)
    }

    pub fn value(&self, id: NodeId) -> Option<&PlannedValue> {
        self.index.get(&id).map(|&i| &self.values[i])
    }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Best-fit allocator over one growing arena.
#[derive(Default)]
struct FreeList {
    /// Free blocks (offset, size), sorted by offset, never adjacent.
    blocks: Vec<(usize, usize)>,
    end: usize,
}

impl FreeList {
    fn alloc(&mut self, size: usize) -> usize {
        let best = self
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1 >= size)
            .min_by_key(|(_, b)| b.1)
            .map(|(i, _)| i);
        if let Some(i) = best {
            let (off, sz) = self.blocks[i];
            if sz == size {
                self.blocks.remove(i);
            } else {
                self.blocks[i] = (off + size, sz - size);
            }
            return off;
        }
        // Nothing fits: grow the arena, starting inside a free block at its end if there is one.
        if let Some(&(off, sz)) = self.blocks.last() {
            if off + sz == self.end {
                self.blocks.pop();
                self.end = off + size;
                return off;
            }
        }
        let off = self.end;
        self.end += size;
        off
    }

    fn free(&mut self, offset: usize, size: usize) {
        let i = self.blocks.partition_point(|b| b.0 < offset);
        self.blocks.insert(i, (offset, size));
        // Merge with the next, then the previous neighbour.
        if i + 1 < self.blocks.len() && self.blocks[i].0 + self.blocks[i].1 == self.blocks[i + 1].0 {
            self.blocks[i].1 += self.blocks[i + 1].1;
            self.blocks.remove(i + 1);
        }
        if i > 0 && self.blocks[i - 1].0 + self.blocks[i - 1].1 == self.blocks[i].0 {
            self.blocks[i - 1].1 += self.blocks[i].1;
            self.blocks.remove(i);
        }
    }
}

/// Plan `graph` for batches of up to `max_tokens` tokens in up to `max_seqs` sequences.
pub fn plan(graph: &Graph, max_tokens: usize, max_seqs: usize) -> Result<Plan, GraphError> {
    let order: Vec<NodeId> = graph
        .topo_order()?
        .into_iter()
        .filter(|&n| !matches!(graph.node(n).op, Op::Weight(_)))
        .collect();
    let bytes_of = |n: NodeId| {
        let node = graph.node(n);
        align(node.shape.elements_for(max_tokens, max_seqs) * 4)
    };
    let mut remaining: HashMap<NodeId, usize> = order.iter().map(|&n| (n, graph.use_count(n))).collect();
    let mut free = FreeList::default();
    let mut values: Vec<PlannedValue> = Vec::with_capacity(order.len());
    let mut index: HashMap<NodeId, usize> = HashMap::with_capacity(order.len());
    let (mut live, mut peak, mut total) = (0usize, 0usize, 0usize);

    for (step, &n) in order.iter().enumerate() {
        let node = graph.node(n);
        let inputs = graph.inputs(n);
        let size = bytes_of(n);
        total += size;
        // In place: the designated input is an arena value read only here, of the same size.
        let reuse = node.op.in_place_input().and_then(|i| {
            let src = inputs[i];
            let v = &values[*index.get(&src)?];
            let only_reader_left = remaining[&src] == 1 && !graph.is_output(src);
            (only_reader_left && v.slot.bytes == size).then_some(v.slot)
        });
        let slot = match reuse {
            Some(s) => s,
            None => {
                live += size;
                Slot {
                    offset: free.alloc(size),
                    bytes: size,
                }
            }
        };
        peak = peak.max(live);
        index.insert(n, values.len());
        values.push(PlannedValue {
            node: n,
            slot,
            first: step,
            last: if graph.is_output(n) { usize::MAX } else { step },
            in_place: reuse.is_some(),
        });

        for (i, &src) in inputs.iter().enumerate() {
            let Some(&vi) = index.get(&src) else { continue }; // weights
            values[vi].last = values[vi].last.max(step);
            let r = remaining.get_mut(&src).expect("planned input");
            *r -= 1;
            let handed_over = reuse.is_some() && node.op.in_place_input() == Some(i);
            if *r == 0 && !graph.is_output(src) && !handed_over {
                free.free(values[vi].slot.offset, values[vi].slot.bytes);
                live -= values[vi].slot.bytes;
            }
        }
        // A value nobody reads (dead code) is released at once.
        if remaining[&n] == 0 && !graph.is_output(n) {
            free.free(slot.offset, slot.bytes);
            live -= slot.bytes;
        }
    }
    Ok(Plan {
        max_tokens,
        max_seqs,
        order,
        values,
        arena_bytes: free.end,
        peak_live_bytes: peak,
        total_value_bytes: total,
        index,
    })
}

/// Check that no two values that are live at the same time share arena bytes (in-place
/// hand-over excepted). Returns the first conflict.
pub fn check_plan(plan: &Plan) -> Result<(), String> {
    let vals = &plan.values;
    for (i, a) in vals.iter().enumerate() {
        if a.slot.offset + a.slot.bytes > plan.arena_bytes {
            return Err(format!("{:?} ends past the arena", a.node));
        }
        for b in &vals[i + 1..] {
            let (x, y) = if a.first <= b.first { (a, b) } else { (b, a) };
            let overlap = x.slot.offset < y.slot.offset + y.slot.bytes && y.slot.offset < x.slot.offset + x.slot.bytes;
            if !overlap {
                continue;
            }
            // y is written at y.first; x must be dead by then, or hand its buffer to y.
            let ok = x.last < y.first || (x.last == y.first && y.in_place && x.slot == y.slot);
            if !ok {
                return Err(format!(
                    "{:?} (steps {}..={}) and {:?} (steps {}..={}) overlap in the arena",
                    x.node, x.first, x.last, y.node, y.first, y.last
                ));
            }
        }
    }
    Ok(())
}
