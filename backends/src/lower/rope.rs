//! RoPE's cos/sin tables, made once per (base, head size) at load and shared by every step that
//! rotates with them.

use std::cell::RefCell;
use std::sync::Arc;

/// cos/sin of `pos · base^(−2i/hd)` for every position the plan allows.
pub struct RopeTable {
    base: f32,
    head_dim: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// The tables made so far.
#[derive(Default)]
pub struct RopeTables {
    tables: RefCell<Vec<Arc<RopeTable>>>,
}

impl RopeTables {
    pub fn get(&self, base: f32, head_dim: usize, positions: usize) -> Arc<RopeTable> {
        let mut tables = self.tables.borrow_mut();
        if let Some(t) = tables.iter().find(|t| t.base == base && t.head_dim == head_dim) {
            return t.clone();
        }
        let half = head_dim / 2;
        // As the reference computes it, in f32: inv_freq = 1 / base^(2i/hd), angle = pos · inv_freq.
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let t = Arc::new(RopeTable {
            base,
            head_dim,
            cos,
            sin,
        });
        tables.push(t.clone());
        t
    }
}
