//! A classifier head trained on the embeddings, next to the embedding head, on one encoder:
//! one forward pass gives each text's vector and its class probabilities.
//!
//! Train the head first (scikit-learn on Debian's AppStream descriptions, see
//! `examples/classifier/train.py`), then:
//!
//! `cargo run --release --example classifier -- /tmp/clf/classifier.safetensors "A fast-paced space shooter"`

use gemma_graph::{EmbedOptions, Error, LinearHead, Model, ModelOptions, Prompt, SentenceTransformersHead};

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let file = args.next().unwrap_or_else(|| "classifier.safetensors".into());
    let mut texts: Vec<String> = args.collect();
    if texts.is_empty() {
        texts = vec!["A fast-paced space shooter with forty levels".into()];
    }
    let classifier = LinearHead::classifier(&file);
    let model = Model::load_heads(
        gemma_graph::default_model_path(),
        &ModelOptions::default(),
        &[&SentenceTransformersHead, &classifier],
    )?;
    // The class names train.py stored in the file's metadata.
    let labels: Vec<String> = model
        .user_weights()
        .metadata(&file, "labels")
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    let options = EmbedOptions {
        // The head was trained on embeddings made with this prompt.
        prompt: Some(Prompt::Name("Classification".into())),
        ..Default::default()
    };
    let out = model.embed(&texts, &options)?;
    for (i, text) in texts.iter().enumerate() {
        let probabilities = out.head(1, i);
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        let top: Vec<String> = order
            .iter()
            .take(3)
            .map(|&c| format!("{} {:.3}", labels.get(c).map_or("?", String::as_str), probabilities[c]))
            .collect();
        println!("{}\t{text}\t({} dims embedding)", top.join(", "), out.vector(i).len());
    }
    Ok(())
}
