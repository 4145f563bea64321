//! A small semantic search: embed a corpus once with the document prompt, each query with
//! the query prompt, rank the corpus by cosine.
//!
//! `cargo run --release --example semantic_search -- "which tower is in France?"`

use gemma_graph::{EmbedOptions, Error, Model, Prompt};

const CORPUS: [&str; 6] = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Sourdough bread rises with wild yeast and lactic acid bacteria.",
    "Mitochondria produce most of the cell's chemical energy.",
    "The Great Wall of China stretches thousands of kilometres.",
    "A binary search halves the interval at every step.",
    "Photosynthesis converts light, water and carbon dioxide into sugar.",
];

fn main() -> Result<(), Error> {
    let mut queries: Vec<String> = std::env::args().skip(1).collect();
    if queries.is_empty() {
        queries = vec!["which tower is in France?".into(), "how do plants make food?".into()];
    }
    let model = Model::load(gemma_graph::default_model_path())?;
    let with = |prompt: &str| EmbedOptions {
        prompt: Some(Prompt::Name(prompt.into())),
        ..Default::default()
    };
    let docs = model.embed(&CORPUS, &with("document"))?;
    let qs = model.embed(&queries, &with("query"))?;
    for (qi, query) in queries.iter().enumerate() {
        let mut ranked: Vec<(f32, &str)> = (0..CORPUS.len())
            .map(|d| {
                (
                    qs.vector(qi).iter().zip(docs.vector(d)).map(|(a, b)| a * b).sum(),
                    CORPUS[d],
                )
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("{query}");
        for (score, doc) in &ranked[..3] {
            println!("  {score:.4}  {doc}");
        }
    }
    Ok(())
}
