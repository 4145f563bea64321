//! `gemma-graph search --query TEXT [--query ...] --input FILE [--top K] [--embeddings F.npy]`:
//! embed a corpus with the document prompt and queries with the query prompt, print the best
//! matches. `--embeddings` reuses vectors `run --prompt document --format npy` wrote.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gemma_graph::{EmbedOptions, Prompt};
use serde_json::{json, Value};

use super::ModelArgs;
use crate::input::{Source, TextArgs};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SearchFormat {
    Text,
    Jsonl,
}

#[derive(clap::Args)]
pub struct Args {
    /// A query (repeat for several).
    #[arg(long = "query", short = 'q', required = true, value_name = "TEXT")]
    queries: Vec<String>,
    /// The corpus: --input FILE (JSONL, lines, CSV, TSV) or texts as arguments.
    #[command(flatten)]
    source: TextArgs,
    /// How many matches per query.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// The corpus's vectors, from `run --prompt document --format npy` over the same input
    /// (one row per input line; checked against the corpus's length).
    #[arg(long, value_name = "FILE.npy")]
    embeddings: Option<PathBuf>,
    /// Matryoshka dimension (768, 512, 256 or 128) [default: the embeddings file's, else 768].
    #[arg(long)]
    dim: Option<usize>,
    #[arg(long, value_enum, default_value = "text")]
    format: SearchFormat,
    #[command(flatten)]
    model_args: ModelArgs,
}

struct Doc {
    number: usize,
    text: Option<String>,
    fields: Vec<(String, Value)>,
}

pub fn run(args: Args) -> Result<()> {
    if args.top == 0 {
        bail!("--top 0: ask for at least one match");
    }
    let mut source = Source::open(&args.source)?;
    let mut docs = Vec::new();
    while let Some(r) = source.next()? {
        let text = match (r.text, &args.embeddings) {
            (Ok(t), _) => Some(t),
            // A line `run --skip-invalid` wrote as a NaN row: keep the rows aligned.
            (Err(_), Some(_)) => None,
            (Err(e), None) => bail!("{}: {e}", source.place(r.number)),
        };
        docs.push(Doc {
            number: r.number,
            text,
            fields: r.fields,
        });
    }
    let path = args.source.model_path();
    let model = super::load_model(&path, &args.model_args.options(0, Default::default()))?;
    model.matryoshka_dim(args.dim)?;
    let encode = args.model_args.encode();

    let (dim, corpus) = match &args.embeddings {
        Some(npy) => {
            let (rows, file_dim, mut values) = crate::stored::read_npy(npy)?;
            if rows != docs.len() {
                bail!(
                    "{}: {rows} rows, but the corpus has {} texts; write it with `run --prompt document --format npy` over the same input",
                    npy.display(),
                    docs.len()
                );
            }
            // Vectors of another model, or cut to a size the model was not trained for,
            // would give scores that mean nothing.
            if model.matryoshka_dim(Some(file_dim)).is_err() {
                bail!(
                    "{}: {file_dim}-dimensional vectors are not this model's ({} or a Matryoshka size: {}); write them with `run --prompt document --format npy`",
                    npy.display(),
                    model.output_dim(),
                    gemma_graph::MATRYOSHKA_DIMS.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            let dim = args.dim.unwrap_or(file_dim);
            if dim > file_dim {
                bail!("--dim {dim}: {} holds {file_dim}-dimensional vectors", npy.display());
            }
            if dim < file_dim {
                values = values
                    .chunks_exact(file_dim)
                    .flat_map(|r| normalized(&r[..dim]))
                    .collect();
            }
            (dim, values)
        }
        None => {
            let dim = args.dim.unwrap_or(model.output_dim());
            let prompt = Prompt::Name("document".into());
            let options = EmbedOptions {
                // The CLI's limit is on a line; the library's counts the prompt too.
                max_text_bytes: Some(args.source.max_text_bytes.saturating_add(prompt.text()?.len())),
                prompt: Some(prompt),
                dim: Some(dim),
                encode,
                ..Default::default()
            };
            let mut values = Vec::with_capacity(docs.len() * dim);
            for window in docs.chunks(1024) {
                let texts: Vec<&str> = window.iter().filter_map(|d| d.text.as_deref()).collect();
                let out = model.embed(&texts, &options)?;
                values.extend(out.items.iter().flat_map(|it| it.values[..it.dim].iter().copied()));
            }
            (dim, values)
        }
    };
    let options = EmbedOptions {
        prompt: Some(Prompt::Name("query".into())),
        dim: Some(dim),
        encode,
        ..Default::default()
    };
    let queries = model.embed(&args.queries, &options)?;
    let mut out = crate::stdout::Out::stdout();
    use std::io::Write;
    for (qi, query) in args.queries.iter().enumerate() {
        let q = queries.vector(qi);
        let mut scored: Vec<(f32, usize)> = corpus
            .chunks_exact(dim)
            .enumerate()
            .filter(|(_, v)| v.iter().all(|x| x.is_finite()))
            .map(|(i, v)| (cosine(q, v), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(args.top);
        match args.format {
            SearchFormat::Text => {
                writeln!(out, "query: {query}")?;
                for (rank, (score, i)) in scored.iter().enumerate() {
                    let d = &docs[*i];
                    let excerpt: String = d.text.as_deref().unwrap_or("").chars().take(70).collect();
                    writeln!(
                        out,
                        "{:>4}  {score:.4}  {}  {excerpt:?}",
                        rank + 1,
                        source.place(d.number)
                    )?;
                }
            }
            SearchFormat::Jsonl => {
                let results: Vec<Value> = scored
                    .iter()
                    .enumerate()
                    .map(|(rank, (score, i))| {
                        let d = &docs[*i];
                        let mut m = serde_json::Map::new();
                        m.insert("rank".into(), (rank + 1).into());
                        m.insert("index".into(), (*i).into());
                        m.insert("score".into(), (*score).into());
                        m.insert("text".into(), d.text.clone().into());
                        for (k, v) in &d.fields {
                            m.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                        Value::Object(m)
                    })
                    .collect();
                serde_json::to_writer(&mut out, &json!({ "query": query, "results": results }))?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The cosine of a unit query with a stored row, in f64: rows written by `run` are unit
/// length, but a row of huge values would overflow f32's dot product to ±inf. A zero row
/// scores 0.
fn cosine(query: &[f32], row: &[f32]) -> f32 {
    let (mut dot, mut norm) = (0f64, 0f64);
    for (&q, &r) in query.iter().zip(row) {
        dot += f64::from(q) * f64::from(r);
        norm += f64::from(r) * f64::from(r);
    }
    if norm > 0.0 {
        (dot / norm.sqrt()) as f32
    } else {
        0.0
    }
}

/// A vector's prefix scaled to unit length (Matryoshka truncation of stored vectors), its
/// norm in f64 so huge values cannot overflow it.
fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    v.iter().map(|&x| (f64::from(x) / n) as f32).collect()
}
