//! The static buffer plan: one arena, an offset for every value.
//!
//! ggml-alloc's algorithm: walk the graph in execution order, counting the remaining uses
//! of every value; give each output a buffer from a best-fit free list (or its input's
//! buffer, in place, when the op allows it and that input has no later reader); free a
//! buffer after its last reader has run. Graph outputs are never freed. Sizes are those of
//! the largest batch the plan is made for; smaller batches use a prefix of each buffer.
//!
//! The plan is in bytes: every value has an element type (f32, i32, f16, i8/i16, quantized
//! blocks), and op scratch is whatever the backend's chosen kernel asked for at lowering.

use std::collections::HashMap;

use gg_ops::{DType, Op, Shape};
use serde::{Deserialize, Serialize};

use crate::ir::{Graph, GraphError, NodeId};

/// Buffers start on cache-line boundaries.
pub const ALIGN: usize = 64;

/// Temporary memory a kernel needs while its node runs: `shape` elements of `dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScratchNeed {
    pub dtype: DType,
    pub shape: Shape,
}

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
    pub dtype: DType,
    pub slot: Slot,
    /// Step that writes it.
    pub first: usize,
    /// Step of its last reader (`usize::MAX` for graph outputs).
    pub last: usize,
    /// It reuses the buffer of its input 0.
    pub in_place: bool,
    /// Scratch memory of `node`'s op, live only while it runs (not the node's output).
    pub scratch: bool,
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
    scratch_index: HashMap<NodeId, usize>,
}

impl Plan {
    pub fn slot(&self, id: NodeId) -> Option<Slot> {
        self.index.get(&id).map(|&i| self.values[i].slot)
    }

    /// The scratch buffer of a node's op, if it needs one.
    pub fn scratch(&self, id: NodeId) -> Option<Slot> {
        self.scratch_index.get(&id).map(|&i| self.values[i].slot)
    }

    pub fn value(&self, id: NodeId) -> Option<&PlannedValue> {
        self.index.get(&id).map(|&i| &self.values[i])
    }
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

/// Storage shared by a value and the in-place values that take it over.
struct Buffer {
    bytes: usize,
    first: usize,
    last: usize,
    offset: usize,
}

/// Plan `graph` for batches of up to `max_tokens` tokens in up to `max_seqs` sequences.
///
/// The walk decides lifetimes and in-place reuse; offsets are then assigned twice — online
/// in execution order with a best-fit free list (ggml-alloc), and offline largest-first
/// into the lowest gap that no overlapping lifetime occupies (TFLite's greedy-by-size) — and
/// the smaller arena wins. Both are checked by [`check_plan`] in the tests.
pub fn plan(graph: &Graph, max_tokens: usize, max_seqs: usize) -> Result<Plan, GraphError> {
    plan_with_scratch(graph, max_tokens, max_seqs, &HashMap::new())
}

/// [`plan`], with the scratch buffers the chosen kernels need (from lowering).
pub fn plan_with_scratch(
    graph: &Graph,
    max_tokens: usize,
    max_seqs: usize,
    scratch: &HashMap<NodeId, ScratchNeed>,
) -> Result<Plan, GraphError> {
    let order: Vec<NodeId> = graph
        .topo_order()?
        .into_iter()
        .filter(|&n| !matches!(graph.node(n).op, Op::Weight(_)))
        .collect();
    // Sizes come from the batch limits the caller asked for: checked, never wrapped.
    let bytes_of = |n: NodeId, dtype: DType, shape: &Shape| -> Result<usize, GraphError> {
        shape
            .rows_for(max_tokens, max_seqs)
            .checked_mul(shape.cols)
            .and_then(|e| dtype.bytes_for(e))
            .and_then(|b| b.checked_next_multiple_of(ALIGN))
            .ok_or_else(|| GraphError::Invalid {
                label: graph.node(n).label.clone(),
                what: format!("{shape} {dtype} for {max_tokens} tokens / {max_seqs} sequences does not fit in memory"),
            })
    };
    let mut remaining: HashMap<NodeId, usize> = order.iter().map(|&n| (n, graph.use_count(n))).collect();
    let mut values: Vec<PlannedValue> = Vec::with_capacity(order.len());
    // For each value, the buffer it lives in.
    let mut buffer_of: Vec<usize> = Vec::with_capacity(order.len());
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut index: HashMap<NodeId, usize> = HashMap::with_capacity(order.len());
    let mut scratch_index: HashMap<NodeId, usize> = HashMap::new();
    let mut total = 0usize;

    for (step, &n) in order.iter().enumerate() {
        let node = graph.node(n);
        let inputs = graph.inputs(n);
        let size = bytes_of(n, node.dtype, &node.shape)?;
        total = total.saturating_add(size);
        let last = if graph.is_output(n) { usize::MAX } else { step };
        // In place: the designated input is an arena value read only here, of the same size.
        let reuse = node.op.in_place_input().and_then(|i| {
            let src = inputs[i];
            let vi = *index.get(&src)?;
            let only_reader_left = remaining[&src] == 1 && !graph.is_output(src);
            (only_reader_left && values[vi].slot.bytes == size).then_some(buffer_of[vi])
        });
        let buffer = match reuse {
            Some(b) => b,
            None => {
                buffers.push(Buffer {
                    bytes: size,
                    first: step,
                    last,
                    offset: 0,
                });
                buffers.len() - 1
            }
        };
        buffers[buffer].last = buffers[buffer].last.max(last);
        index.insert(n, values.len());
        buffer_of.push(buffer);
        values.push(PlannedValue {
            node: n,
            dtype: node.dtype,
            slot: Slot { offset: 0, bytes: size },
            first: step,
            last,
            in_place: reuse.is_some(),
            scratch: false,
        });
        if let Some(need) = scratch.get(&n) {
            let bytes = bytes_of(n, need.dtype, &need.shape)?;
            total = total.saturating_add(bytes);
            buffers.push(Buffer {
                bytes,
                first: step,
                last: step,
                offset: 0,
            });
            scratch_index.insert(n, values.len());
            buffer_of.push(buffers.len() - 1);
            values.push(PlannedValue {
                node: n,
                dtype: need.dtype,
                slot: Slot { offset: 0, bytes },
                first: step,
                last: step,
                in_place: false,
                scratch: true,
            });
        }
        for &src in &inputs {
            let Some(&vi) = index.get(&src) else { continue }; // weights
            values[vi].last = values[vi].last.max(step);
            let b = buffer_of[vi];
            buffers[b].last = buffers[b].last.max(step);
            *remaining.get_mut(&src).expect("planned input") -= 1;
        }
    }

    let online = assign_online(&buffers, order.len());
    let offline = assign_greedy_by_size(&buffers);
    let (offsets, arena_bytes) = if offline.1 < online.1 { offline } else { online };
    for (b, off) in buffers.iter_mut().zip(&offsets) {
        b.offset = *off;
    }
    for (v, &b) in values.iter_mut().zip(&buffer_of) {
        v.slot.offset = buffers[b].offset;
    }
    // Peak of the bytes live at any step.
    let mut delta = vec![0isize; order.len() + 1];
    for b in &buffers {
        delta[b.first] += b.bytes as isize;
        if b.last < order.len() {
            delta[b.last + 1] -= b.bytes as isize;
        }
    }
    let (mut live, mut peak) = (0isize, 0isize);
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    Ok(Plan {
        max_tokens,
        max_seqs,
        order,
        values,
        arena_bytes,
        peak_live_bytes: peak as usize,
        total_value_bytes: total,
        index,
        scratch_index,
    })
}

/// ggml-alloc's walk: at each step, release buffers whose last reader ran before it, then
/// give the buffers born at this step the best-fitting free block.
fn assign_online(buffers: &[Buffer], steps: usize) -> (Vec<usize>, usize) {
    let mut free = FreeList::default();
    let mut offsets = vec![0; buffers.len()];
    let mut by_first: Vec<usize> = (0..buffers.len()).collect();
    by_first.sort_by_key(|&b| (buffers[b].first, b));
    let mut by_last: Vec<usize> = (0..buffers.len()).filter(|&b| buffers[b].last < steps).collect();
    by_last.sort_by_key(|&b| (buffers[b].last, b));
    let (mut born, mut dead) = (0, 0);
    for step in 0..steps {
        while dead < by_last.len() && buffers[by_last[dead]].last < step {
            let b = by_last[dead];
            free.free(offsets[b], buffers[b].bytes);
            dead += 1;
        }
        while born < by_first.len() && buffers[by_first[born]].first == step {
            let b = by_first[born];
            offsets[b] = free.alloc(buffers[b].bytes);
            born += 1;
        }
    }
    (offsets, free.end)
}

/// Largest buffers first, each at the lowest-waste gap among the buffers already placed
/// whose lifetimes overlap its own.
fn assign_greedy_by_size(buffers: &[Buffer]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].bytes), buffers[b].first, b));
    let mut offsets = vec![0; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut end = 0;
    for &b in &order {
        let buf = &buffers[b];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| buffers[p].first <= buf.last && buf.first <= buffers[p].last)
            .map(|&p| (offsets[p], offsets[p] + buffers[p].bytes))
            .collect();
        busy.sort_unstable();
        // Best fit among the gaps between busy intervals; else after the last one.
        let (mut best, mut best_waste) = (None, usize::MAX);
        let mut cursor = 0;
        for &(lo, hi) in &busy {
            if lo >= cursor + buf.bytes && lo - cursor - buf.bytes < best_waste {
                best = Some(cursor);
                best_waste = lo - cursor - buf.bytes;
            }
            cursor = cursor.max(hi);
        }
        let off = best.unwrap_or(cursor);
        offsets[b] = off;
        end = end.max(off + buf.bytes);
        placed.push(b);
    }
    (offsets, end)
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
