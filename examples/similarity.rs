//! How similar two texts are: the cosine of their vectors (unit length, so a dot product),
//! with EmbeddingGemma's sentence-similarity prompt.
//!
//! `cargo run --release --example similarity -- "A cat sits on the mat" "A kitten rests on the rug"`

use gemma_graph::{EmbedOptions, Error, Model, Prompt};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (a, b) = match &args[..] {
        [a, b, ..] => (a.clone(), b.clone()),
        _ => ("A cat sits on the mat".into(), "A kitten rests on the rug".into()),
    };
    let model = Model::load(gemma_graph::default_model_path())?;
    let options = EmbedOptions {
        prompt: Some(Prompt::Name("STS".into())),
        ..Default::default()
    };
    let out = model.embed(&[&a, &b], &options)?;
    let cosine: f32 = out.vector(0).iter().zip(out.vector(1)).map(|(x, y)| x * y).sum();
    println!("{cosine:.4}\t{a:?} ~ {b:?}");
    Ok(())
}
