//! What a job did: counts, throughput, per-pass latency, memory — for `--stats` and
//! `--stats-json`.

use serde::Serialize;

#[derive(Serialize, Default)]
pub struct Stats {
    pub texts: usize,
    /// Output rows (more than texts when texts are split into chunks).
    pub rows: usize,
    pub tokens: usize,
    pub invalid: usize,
    pub truncated: usize,
    pub wall_seconds: f64,
    pub load_seconds: f64,
    pub texts_per_second: f64,
    pub tokens_per_second: f64,
    /// Forward passes and their latency.
    pub passes: usize,
    pub pass_p50_ms: f64,
    pub pass_p95_ms: f64,
    pub backend: String,
    pub threads: usize,
    pub arena_bytes: usize,
    /// The process's peak resident memory (VmHWM), when the OS tells it.
    pub peak_rss_bytes: Option<u64>,
}

impl Stats {
    /// Fill in the derived figures from the pass latencies and the wall time.
    pub fn finish(&mut self, latency: &Latency, wall: f64) {
        self.wall_seconds = wall;
        self.texts_per_second = self.texts as f64 / wall.max(1e-9);
        self.tokens_per_second = self.tokens as f64 / wall.max(1e-9);
        self.passes = latency.count() as usize;
        self.pass_p50_ms = latency.percentile(0.50) * 1e3;
        self.pass_p95_ms = latency.percentile(0.95) * 1e3;
        self.peak_rss_bytes = peak_rss();
    }

    /// Several lines for people, on stderr.
    pub fn report(&self) -> String {
        let rss = self.peak_rss_bytes.map_or("unknown".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        });
        format!(
            "stats: {} texts ({} rows, {} invalid, {} truncated), {} tokens\n\
             stats: {:.3} s (+ {:.3} s loading): {:.1} texts/s, {:.0} tokens/s\n\
             stats: {} forward passes, latency p50 {:.1} ms, p95 {:.1} ms\n\
             stats: backend {}, {} threads, arena {} bytes, peak RSS {rss}\n",
            self.texts,
            self.rows,
            self.invalid,
            self.truncated,
            self.tokens,
            self.wall_seconds,
            self.load_seconds,
            self.texts_per_second,
            self.tokens_per_second,
            self.passes,
            self.pass_p50_ms,
            self.pass_p95_ms,
            self.backend,
            self.threads,
            self.arena_bytes,
        )
    }
}

/// Forward-pass latencies in fixed memory, whatever the job's length: a histogram with 16
/// buckets per doubling from 1 µs (percentiles within ±2.2 %).
pub struct Latency {
    buckets: Vec<u64>,
}

const SUB: f64 = 16.0;
const MIN_SECONDS: f64 = 1e-6;

impl Default for Latency {
    fn default() -> Self {
        // 1 µs · 2^40 ≈ 12 days.
        Latency {
            buckets: vec![0; 40 * SUB as usize],
        }
    }
}

impl Latency {
    pub fn add(&mut self, seconds: f64) {
        let b = ((seconds / MIN_SECONDS).max(1.0).log2() * SUB) as usize;
        let last = self.buckets.len() - 1;
        self.buckets[b.min(last)] += 1;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The nearest-rank percentile, as its bucket's geometric middle (0 for no passes).
    pub fn percentile(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return MIN_SECONDS * 2f64.powf((b as f64 + 0.5) / SUB);
            }
        }
        0.0
    }
}

/// A count of places (file and line) and the first few of them, in fixed memory.
#[derive(Default)]
pub struct Places {
    pub count: usize,
    pub first: Vec<String>,
}

impl Places {
    pub fn push(&mut self, place: String) {
        self.count += 1;
        if self.first.len() < 5 {
            self.first.push(place);
        }
    }
}

/// Peak resident set size of this process (Linux: `VmHWM` in `/proc/self/status`).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_within_a_bucket() {
        let mut l = Latency::default();
        assert_eq!(l.percentile(0.5), 0.0);
        for ms in 1..=100 {
            l.add(ms as f64 * 1e-3);
        }
        assert_eq!(l.count(), 100);
        let p50 = l.percentile(0.5);
        let p95 = l.percentile(0.95);
        assert!((p50 / 0.050 - 1.0).abs() < 0.025, "{p50}");
        assert!((p95 / 0.095 - 1.0).abs() < 0.025, "{p95}");
        l.add(1e9);
        l.add(0.0);
        assert_eq!(l.count(), 102);
    }
}
