//! `gemma-graph similarity A B [C ...]`: the cosine similarity of every pair of texts.

use std::io::Write;

use anyhow::{bail, Result};
use gemma_graph::EmbedOptions;
use serde_json::json;

use super::ModelArgs;
use crate::input::PromptArgs;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SimilarityFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Two or more texts.
    #[arg(required = true, num_args = 2..)]
    texts: Vec<String>,
    /// GGUF file (default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// Task prompt for every text (EmbeddingGemma's is `STS` for sentence similarity).
    #[command(flatten)]
    prompt: PromptArgs,
    /// Matryoshka dimension (768, 512, 256 or 128).
    #[arg(long)]
    dim: Option<usize>,
    #[arg(long, value_enum, default_value = "text")]
    format: SimilarityFormat,
    #[command(flatten)]
    model_args: ModelArgs,
}

pub fn run(args: Args) -> Result<()> {
    if args.texts.len() < 2 {
        bail!("give at least two texts");
    }
    let path = crate::input::model_path(args.model.clone());
    let model = super::load_model(&path, &args.model_args.options(0, Default::default()))?;
    model.matryoshka_dim(args.dim)?;
    let options = EmbedOptions {
        prompt: args.prompt.prompt()?,
        dim: args.dim,
        encode: args.model_args.encode(),
        ..Default::default()
    };
    let out = model.embed(&args.texts, &options)?;
    let n = args.texts.len();
    // Vectors are unit length, so the dot product is the cosine.
    let matrix: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| out.vector(i).iter().zip(out.vector(j)).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    let mut w = crate::stdout::Out::stdout();
    match args.format {
        SimilarityFormat::Json => {
            serde_json::to_writer(&mut w, &json!({ "texts": args.texts, "similarity": matrix }))?;
            writeln!(w)?;
        }
        SimilarityFormat::Text => {
            for (i, t) in args.texts.iter().enumerate() {
                let excerpt: String = t.chars().take(60).collect();
                writeln!(w, "[{i}] {excerpt:?}")?;
            }
            write!(w, "\n    ")?;
            for j in 0..n {
                write!(w, "{:>8}", format!("[{j}]"))?;
            }
            writeln!(w)?;
            for (i, row) in matrix.iter().enumerate() {
                write!(w, "{:<4}", format!("[{i}]"))?;
                for v in row {
                    write!(w, "{v:>8.4}")?;
                }
                writeln!(w)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
