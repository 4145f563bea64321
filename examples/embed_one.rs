//! Embed one text with the default model and print the start of its vector.
//!
//! `cargo run --release --example embed_one -- "How do I bake bread?"`

use gemma_graph::{EmbedOptions, Error, Model};

fn main() -> Result<(), Error> {
    let text = std::env::args().nth(1).unwrap_or_else(|| "How do I bake bread?".into());
    // $GEMMA_GRAPH_MODEL, else the model scripts/fetch-model.sh put in the cache.
    let model = Model::load(gemma_graph::default_model_path())?;
    let out = model.embed(&[text.as_str()], &EmbedOptions::default())?;
    let v = out.vector(0);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    println!("{} dims, {} tokens, norm {norm:.4}", v.len(), out.items[0].tokens);
    println!("{:?}", &v[..8]);
    Ok(())
}
