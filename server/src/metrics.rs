//! Prometheus metrics, rendered as text at `GET /metrics`.
//!
//! A small registry of atomics owned by each server rather than the `metrics` crate's
//! process-global recorder: several servers in one process (the tests start many) keep
//! separate counts, and nothing here allocates on the request path beyond the label map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A histogram with fixed upper bounds (cumulative buckets, as Prometheus wants them).
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in micro-units (µs for seconds, units ×1e6 otherwise) to stay integral.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn family(&self, name: &'static str, help: &'static str) -> Family {
        let mut samples = Vec::new();
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            samples.push(("_bucket", format!("le=\"{b}\""), cumulative.to_string()));
        }
        let count = self.count.load(Ordering::Relaxed);
        samples.push(("_bucket", "le=\"+Inf\"".to_string(), count.to_string()));
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        samples.push(("_sum", String::new(), sum.to_string()));
        samples.push(("_count", String::new(), count.to_string()));
        Family {
            name,
            kind: "histogram",
            help,
            samples,
        }
    }
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const TEXTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const TOKENS: &[f64] = &[
    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 65536.0,
];

/// Everything `/metrics` reports.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    texts: AtomicU64,
    tokens: AtomicU64,
    dropped_texts: AtomicU64,
    queue_texts: AtomicU64,
    queue_tokens: AtomicU64,
    batch_texts: Histogram,
    batch_tokens: Histogram,
    queue_seconds: Histogram,
    inference_seconds: Histogram,
    request_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            texts: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            dropped_texts: AtomicU64::new(0),
            queue_texts: AtomicU64::new(0),
            queue_tokens: AtomicU64::new(0),
            batch_texts: Histogram::new(TEXTS),
            batch_tokens: Histogram::new(TOKENS),
            queue_seconds: Histogram::new(SECONDS),
            inference_seconds: Histogram::new(SECONDS),
            request_seconds: Histogram::new(SECONDS),
        }
    }
}

impl Metrics {
    /// A finished request: its route, status and wall time.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
        self.request_seconds.observe(seconds);
    }

    /// Texts and tokens accepted for embedding.
    pub fn embedded(&self, texts: usize, tokens: usize) {
        self.texts.fetch_add(texts as u64, Ordering::Relaxed);
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
    }

    pub fn dropped_text(&self) {
        self.dropped_texts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_queue(&self, texts: usize, tokens: usize) {
        self.queue_texts.store(texts as u64, Ordering::Relaxed);
        self.queue_tokens.store(tokens as u64, Ordering::Relaxed);
    }

    pub fn observe_queue(&self, waited: Duration) {
        self.queue_seconds.observe(waited.as_secs_f64());
    }

    pub fn observe_batch(&self, texts: usize, tokens: usize, took: Duration) {
        self.batch_texts.observe(texts as f64);
        self.batch_tokens.observe(tokens as f64);
        self.inference_seconds.observe(took.as_secs_f64());
    }

    /// Every family's samples, labels without braces (`route="/embed",status="200"`).
    fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((route, status), n)| (format!("route=\"{route}\",status=\"{status}\""), n.to_string()))
            .collect();
        out.push(Family::new(
            "gemma_graph_requests_total",
            "counter",
            "HTTP requests by route and status.",
            requests,
        ));
        let scalars = [
            (
                "gemma_graph_texts_total",
                "counter",
                "Texts accepted for embedding.",
                &self.texts,
            ),
            (
                "gemma_graph_tokens_total",
                "counter",
                "Tokens accepted for embedding.",
                &self.tokens,
            ),
            (
                "gemma_graph_dropped_texts_total",
                "counter",
                "Queued texts dropped because their client went away or timed out.",
                &self.dropped_texts,
            ),
            (
                "gemma_graph_queue_texts",
                "gauge",
                "Texts waiting for a batch.",
                &self.queue_texts,
            ),
            (
                "gemma_graph_queue_tokens",
                "gauge",
                "Tokens waiting for a batch.",
                &self.queue_tokens,
            ),
        ];
        for (name, kind, help, value) in scalars {
            let v = value.load(Ordering::Relaxed).to_string();
            out.push(Family::new(name, kind, help, vec![(String::new(), v)]));
        }
        let histograms = [
            (&self.batch_texts, "gemma_graph_batch_texts", "Texts per forward batch."),
            (
                &self.batch_tokens,
                "gemma_graph_batch_tokens",
                "Tokens per forward batch.",
            ),
            (
                &self.queue_seconds,
                "gemma_graph_queue_seconds",
                "Time a text waited in the queue before its batch started.",
            ),
            (
                &self.inference_seconds,
                "gemma_graph_inference_seconds",
                "Time per forward batch.",
            ),
            (
                &self.request_seconds,
                "gemma_graph_request_seconds",
                "Wall time per HTTP request.",
            ),
        ];
        for (h, name, help) in histograms {
            out.push(h.family(name, help));
        }
        out
    }

    /// The Prometheus text exposition format of this server's models: each family once, a
    /// `model` label on every sample when there are several models.
    pub fn render(models: &[(&str, &Metrics, Vec<Family>)]) -> String {
        let per_model: Vec<(&str, Vec<Family>)> = models
            .iter()
            .map(|(name, m, extra)| {
                let mut f = m.families();
                f.extend(extra.iter().cloned());
                (*name, f)
            })
            .collect();
        let labelled = per_model.len() > 1;
        let mut out = String::new();
        let Some((_, first)) = per_model.first() else {
            return out;
        };
        for (i, family) in first.iter().enumerate() {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                family.name, family.help, family.name, family.kind
            );
            for (model, families) in &per_model {
                let Some(f) = families.get(i) else { continue };
                for (suffix, labels, value) in &f.samples {
                    let model_label = if labelled {
                        format!("model=\"{model}\"")
                    } else {
                        String::new()
                    };
                    let all: Vec<&str> = [model_label.as_str(), labels.as_str()]
                        .into_iter()
                        .filter(|l| !l.is_empty())
                        .collect();
                    let labels = if all.is_empty() {
                        String::new()
                    } else {
                        format!("{{{}}}", all.join(","))
                    };
                    let _ = writeln!(out, "{}{suffix}{labels} {value}", f.name);
                }
            }
        }
        out
    }
}

/// One metric family's samples: (name suffix such as `_bucket`, labels, value).
#[derive(Clone)]
pub struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(&'static str, String, String)>,
}

impl Family {
    pub fn new(name: &'static str, kind: &'static str, help: &'static str, samples: Vec<(String, String)>) -> Family {
        Family {
            name,
            kind,
            help,
            samples: samples.into_iter().map(|(l, v)| ("", l, v)).collect(),
        }
    }
}
