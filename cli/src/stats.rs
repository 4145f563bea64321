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
    /// Fill in the derived figures from the pass latencies (seconds) and the wall time.
    pub fn finish(&mut self, mut pass_seconds: Vec<f64>, wall: f64) {
        self.wall_seconds = wall;
        self.texts_per_second = self.texts as f64 / wall.max(1e-9);
        self.tokens_per_second = self.tokens as f64 / wall.max(1e-9);
        pass_seconds.sort_by(f64::total_cmp);
        self.passes = pass_seconds.len();
        self.pass_p50_ms = percentile(&pass_seconds, 0.50) * 1e3;
        self.pass_p95_ms = percentile(&pass_seconds, 0.95) * 1e3;
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

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Peak resident set size of this process (Linux: `VmHWM` in `/proc/self/status`).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
