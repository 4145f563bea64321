//! Replacing the pooling head through the public API: the same encoder, other outputs.
//!
//! `cargo run --release --example custom_head -- "some text" "another text"`
//!
//! Builds three models from the same GGUF: the default sentence-transformers head, a
//! max-pooling head without the dense layers, and a head that returns every token's vector.

use gemma_graph::{
    EmbedOptions, Error, HeadBuilder, Model, ModelOptions, PoolKind, PoolingHead, SentenceTransformersHead, Value,
};

/// Element-wise maximum over the tokens, then unit length.
struct MaxPoolHead;

impl PoolingHead for MaxPoolHead {
    fn name(&self) -> &str {
        "max-pool"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        let pooled = b.pool(b.hidden(), PoolKind::Max)?;
        b.l2_normalize(pooled)
    }
}

/// One unit vector per token (e.g. for late-interaction retrieval).
struct PerTokenHead;

impl PoolingHead for PerTokenHead {
    fn name(&self) -> &str {
        "per-token"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        b.l2_normalize(b.hidden())
    }
}

fn main() -> Result<(), Error> {
    let texts: Vec<String> = std::env::args().skip(1).collect();
    let texts = if texts.is_empty() {
        vec!["The quick brown fox".to_string()]
    } else {
        texts
    };
    let path = gemma_graph::default_model_path();
    let options = ModelOptions::default();
    let heads: [&dyn PoolingHead; 3] = [&SentenceTransformersHead, &MaxPoolHead, &PerTokenHead];
    for head in heads {
        let model = Model::load_with(&path, &options, head)?;
        let out = model.embed(&texts, &EmbedOptions::default())?;
        for (text, item) in texts.iter().zip(&out.items) {
            println!(
                "{:<22} {text:?}: {} row(s) x {} dims, first values {:?}",
                head.name(),
                item.rows,
                item.dim,
                &item.values[..4]
            );
        }
    }
    Ok(())
}
