//! Embed a batch of passages with the model's document prompt at Matryoshka dimension 256.
//!
//! `cargo run --release --example embed_batch -- "first passage" "second passage" ...`
//!
//! The texts are packed into as few forward passes as the token budget allows; each vector is
//! the same as if its text were embedded alone.

use gemma_graph::{EmbedOptions, Error, Model, Prompt};

fn main() -> Result<(), Error> {
    let mut texts: Vec<String> = std::env::args().skip(1).collect();
    if texts.is_empty() {
        texts = vec![
            "Bread needs flour, water, salt and yeast.".into(),
            "The Eiffel Tower is in Paris.".into(),
            "Photosynthesis turns light into chemical energy.".into(),
        ];
    }
    let model = Model::load(gemma_graph::default_model_path())?;
    let options = EmbedOptions {
        // "title: none | text: " before every passage, as sentence-transformers'
        // `encode_document` does; `dim` keeps the first 256 values and re-normalizes.
        prompt: Some(Prompt::Name("document".into())),
        dim: Some(256),
        ..Default::default()
    };
    let out = model.embed(&texts, &options)?;
    for (i, text) in texts.iter().enumerate() {
        let v = out.vector(i);
        println!(
            "{i}\t{} dims\t{} tokens\t{:+.4} {:+.4} {:+.4} ...\t{text}",
            v.len(),
            out.items[i].tokens,
            v[0],
            v[1],
            v[2]
        );
    }
    Ok(())
}
