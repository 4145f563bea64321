//! `serve --cache-entries N`: finished vectors by token sequence, least recently used out.
//!
//! Safe only because a vector does not depend on its batch: the model's answer for a token
//! sequence is one fixed vector (batch- and thread-invariant, tested), so a hit returns
//! exactly what a fresh computation would. The key is the sequence the model runs — prompt
//! and truncation applied, BOS/EOS included — so it covers the prompt, the text or token ids
//! and the truncation; dimensions, normalization and dtype are applied to the full vector
//! after the lookup, per request. One server serves one model with one precision.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// At most `capacity` vectors; each entry holds its ids (≤ the context) and its vector.
pub struct VectorCache {
    capacity: usize,
    inner: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A cached answer (the vector, the other heads' outputs) and its last use.
type Entry = (Cached, u64);

/// What the model answered for a sequence: its vector and the other heads' outputs.
pub type Cached = (Arc<[f32]>, Arc<[f32]>);

#[derive(Default)]
struct Lru {
    /// ids → (vector, last use).
    map: HashMap<Arc<[u32]>, Entry>,
    /// last use → ids, oldest first.
    order: BTreeMap<u64, Arc<[u32]>>,
    clock: u64,
}

impl VectorCache {
    pub fn new(capacity: usize) -> VectorCache {
        VectorCache {
            capacity,
            inner: Mutex::new(Lru::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The vector of `ids`, if cached (and now the most recently used); counted.
    pub fn get(&self, ids: &[u32]) -> Option<Cached> {
        let mut lru = self.lock();
        lru.clock += 1;
        let now = lru.clock;
        let found = match lru.map.get_mut(ids) {
            Some((v, used)) => {
                let old = std::mem::replace(used, now);
                Some((v.clone(), old))
            }
            None => None,
        };
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        let (v, old) = found?;
        if let Some(key) = lru.order.remove(&old) {
            lru.order.insert(now, key);
        }
        Some(v)
    }

    /// Keep `vector` (and `extra`, the other heads' outputs) for `ids`, evicting the least
    /// recently used past the capacity.
    pub fn put(&self, ids: &[u32], vector: &[f32], extra: &[f32]) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = self.lock();
        if lru.map.contains_key(ids) {
            return;
        }
        while lru.map.len() >= self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.map.remove(&oldest);
        }
        lru.clock += 1;
        let now = lru.clock;
        let key: Arc<[u32]> = ids.into();
        lru.order.insert(now, Arc::clone(&key));
        lru.map.insert(key, ((vector.into(), extra.into()), now));
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache's families of `/metrics`.
    pub fn families(&self) -> Vec<crate::metrics::Family> {
        use crate::metrics::Family;
        let (hits, misses) = self.counts();
        let one = |v: u64| vec![(String::new(), v.to_string())];
        vec![
            Family::new(
                "gemma_graph_cache_hits_total",
                "counter",
                "Texts answered from the vector cache.",
                one(hits),
            ),
            Family::new(
                "gemma_graph_cache_misses_total",
                "counter",
                "Texts the vector cache did not hold.",
                one(misses),
            ),
            Family::new(
                "gemma_graph_cache_entries",
                "gauge",
                "Vectors in the cache.",
                one(self.len() as u64),
            ),
        ]
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_and_counts_are_kept() {
        let c = VectorCache::new(2);
        let v = |ids: &[u32]| c.get(ids).map(|(v, _)| v.to_vec());
        c.put(&[1], &[1.0], &[]);
        c.put(&[2], &[2.0], &[]);
        assert_eq!(v(&[1]), Some(vec![1.0])); // 1 is now newer than 2
        c.put(&[3], &[3.0], &[0.5]); // evicts 2
        assert!(v(&[2]).is_none());
        assert_eq!(c.get(&[3]).map(|(_, e)| e.to_vec()), Some(vec![0.5]));
        assert_eq!(v(&[1]), Some(vec![1.0]));
        assert_eq!(c.len(), 2);
        assert_eq!(c.counts(), (3, 1));
    }
}
