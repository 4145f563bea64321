//! `gemma-graph inspect [--model PATH] [--json]`

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use gemma_graph::loader::convert::OutType;
use gemma_graph::loader::gemma::GemmaConfig;

use crate::accuracy;
use gemma_graph::loader::gguf::{Gguf, MetaValue};
use serde_json::{json, Value as Json};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file (default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Show this many elements of long arrays.
    #[arg(long, default_value_t = 8)]
    array_head: usize,
}

/// Arrays longer than this are summarized.
const SHORT_ARRAY: usize = 16;

fn value_json(g: &Gguf, v: &MetaValue, head: usize) -> Json {
    match v {
        MetaValue::Array(a) if a.len > SHORT_ARRAY => {
            let all = g.array_to_json(a);
            let first: Vec<Json> = all
                .as_array()
                .map(|x| x.iter().take(head).cloned().collect())
                .unwrap_or_default();
            json!({ "len": a.len, "head": first })
        }
        v => g.value_to_json(v),
    }
}

/// The measured accuracy of the file's `general.file_type`, if it is a type `convert` writes.
fn type_accuracy(g: &Gguf) -> Option<accuracy::TypeAccuracy> {
    let ty = OutType::from_file_type(g.u32("general.file_type").ok()?)?;
    accuracy::of_type(ty.name())
}

fn mean_min(v: accuracy::MeanMin) -> Json {
    json!({"mean": v.mean, "min": v.min})
}

pub fn run(args: Args) -> Result<()> {
    // Everything goes to one buffer written at the end, so a closed or full stdout is an
    // error (or a quiet end for a closed pipe), never a panic.
    let mut text = String::new();
    macro_rules! outln {
        ($($t:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($t)*);
        }};
    }

    let path = crate::input::model_path(args.model);
    let g = Gguf::open(&path)?;
    let config = GemmaConfig::from_gguf(&g);

    let mut totals: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in g.tensors() {
        let e = totals.entry(t.ty.to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }

    if args.json {
        let out = json!({
            "file": path.display().to_string(),
            "version": g.version(),
            "alignment": g.alignment(),
            "file_bytes": g.file_len(),
            "data_offset": g.data_start(),
            "metadata": g.metadata().iter().map(|e| json!({
                "key": e.key, "type": e.value.type_name(), "value": value_json(&g, &e.value, args.array_head)
            })).collect::<Vec<_>>(),
            "tensors": g.tensors().iter().map(|t| json!({
                "name": t.name, "type": t.ty.to_string(), "dims": t.dims, "bytes": t.n_bytes,
                "offset": g.data_start() + t.offset, "supported": t.ty.to_dtype().is_some(),
            })).collect::<Vec<_>>(),
            "totals": totals.iter().map(|(k, (n, b))| (k.clone(), json!({"tensors": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "model": match &config { Ok(c) => serde_json::to_value(c)?, Err(e) => json!({ "error": e.to_string() }) },
            "type_accuracy": type_accuracy(&g).map(|r| json!({
                "type": r.ty, "converted_file_mb": r.file_mb,
                "exact": {"vs_st_f32": mean_min(r.exact_f32), "vs_exact_answer_min": r.exact_w_min},
                "fast": {"vs_st_f32": mean_min(r.fast_f32), "vs_exact_answer_min": r.fast_w_min},
                "int8": {"vs_st_f32": r.int8_f32.map(mean_min), "vs_exact_answer": r.int8_w.map(mean_min)},
                "llama_cpp": {"vs_st_f32": r.llama_f32.map(mean_min), "vs_exact_answer": r.llama_w.map(mean_min)},
            })),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return crate::stdout::write_stdout(text.as_bytes());
    }

    outln!("file       {}", path.display());
    outln!(
        "format     GGUF v{}, alignment {}, {} bytes, tensor data at offset {}",
        g.version(),
        g.alignment(),
        g.file_len(),
        g.data_start()
    );
    outln!("\nmetadata ({} keys)", g.metadata().len());
    for e in g.metadata() {
        let v = value_json(&g, &e.value, args.array_head);
        let shown = match (&e.value, &v) {
            (MetaValue::Array(a), Json::Object(o)) if a.len > SHORT_ARRAY => {
                format!("[{} items] {} ...", a.len, o["head"])
            }
            _ => v.to_string(),
        };
        outln!("  {:<50} {:<16} {}", e.key, e.value.type_name(), shown);
    }
    outln!("\ntensors ({})", g.tensors().len());
    outln!(
        "  {:<36} {:<6} {:<22} {:>12} {:>12}",
        "name",
        "type",
        "dims (innermost first)",
        "bytes",
        "offset"
    );
    for t in g.tensors() {
        let note = if t.ty.to_dtype().is_none() {
            "  (unsupported type)"
        } else {
            ""
        };
        outln!(
            "  {:<36} {:<6} {:<22} {:>12} {:>12}{note}",
            t.name,
            t.ty.to_string(),
            format!("{:?}", t.dims),
            t.n_bytes,
            g.data_start() + t.offset
        );
    }
    outln!("\ntotals by type");
    for (ty, (n, bytes)) in &totals {
        outln!("  {ty:<6} {n:>5} tensors {bytes:>14} bytes");
    }
    outln!("\naccuracy of this file type (measured; docs/accuracy.md)");
    match type_accuracy(&g) {
        Some(r) => {
            for line in accuracy::describe(&r) {
                outln!("{line}");
            }
        }
        None => outln!("  not measured for this general.file_type"),
    }
    outln!("\nmodel as loaded");
    match config {
        Ok(c) => {
            outln!(
                "  architecture      gemma-embedding, {} layers, d_model {}, d_ff {}",
                c.n_layers,
                c.d_model,
                c.d_ff
            );
            outln!(
                "  attention         {} query heads, {} kv heads, head dim {}",
                c.n_heads,
                c.n_kv_heads,
                c.head_dim
            );
            let globals: Vec<usize> = (0..c.n_layers).filter(|&l| c.global_layers[l]).collect();
            outln!("  global layers     {globals:?} (rope base {})", c.rope_base_global);
            match c.local_reach() {
                Some(r) => outln!(
                    "  sliding layers    window {} (|i-j| <= {r}), rope base {}",
                    c.sliding_window.unwrap_or(0),
                    c.rope_base_local
                ),
                None => outln!("  sliding layers    none"),
            }
            outln!(
                "  context           {} tokens, rms eps {:e}, vocab {}",
                c.context_length,
                c.rms_eps,
                c.vocab_size
            );
            outln!("  pooling           {:?}", c.pooling);
            if c.dense.is_empty() {
                outln!("  dense heads       none (vectors differ from the sentence-transformers pipeline)");
            }
            for d in &c.dense {
                outln!(
                    "  dense head        {} {} -> {}",
                    d.tensor,
                    d.in_features,
                    d.out_features
                );
            }
            outln!("  embedding dim     {}", c.embedding_dim());
        }
        Err(e) => outln!("  not loadable as EmbeddingGemma: {e}"),
    }
    crate::stdout::write_stdout(text.as_bytes())
}
