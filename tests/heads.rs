//! Custom pooling heads through the public API only (as examples/custom_head.rs does).

mod common;

use common::tiny::{tiny_model_file, TinySpec};
use gemma_graph::{EmbedOptions, Error, HeadBuilder, Model, ModelOptions, PoolKind, PoolingHead, Value};

struct Hidden;
impl PoolingHead for Hidden {
    fn name(&self) -> &str {
        "hidden"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        Ok(b.hidden())
    }
}

struct Pool(PoolKind);
impl PoolingHead for Pool {
    fn name(&self) -> &str {
        "pool"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        b.pool(b.hidden(), self.0)
    }
}

struct BadHead;
impl PoolingHead for BadHead {
    fn name(&self) -> &str {
        "bad"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        let p = b.pool(b.hidden(), PoolKind::Mean)?;
        b.dense(p, "no_such.weight")
    }
}

#[test]
fn custom_heads_agree_with_per_token_states() {
    let path = tiny_model_file("heads", &TinySpec::default());
    let opts = ModelOptions::default();
    let texts = ["the world", "another world of words"];
    let hidden = Model::load_with(&path, &opts, &Hidden).unwrap();
    assert!(hidden.is_per_token());
    let h = hidden.embed(&texts, &EmbedOptions::default()).unwrap();
    for (kind, pick) in [
        (PoolKind::First, 0usize),
        (PoolKind::Last, usize::MAX),
        (PoolKind::Max, 1),
        (PoolKind::Mean, 2),
    ] {
        let m = Model::load_with(&path, &opts, &Pool(kind)).unwrap();
        let out = m.embed(&texts, &EmbedOptions::default()).unwrap();
        for (i, item) in h.items.iter().enumerate() {
            assert_eq!(item.rows, item.tokens);
            let rows: Vec<&[f32]> = item.values.chunks_exact(item.dim).collect();
            let want: Vec<f32> = match pick {
                0 => rows[0].to_vec(),
                usize::MAX => rows[rows.len() - 1].to_vec(),
                1 => (0..item.dim)
                    .map(|c| rows.iter().map(|r| r[c]).fold(f32::MIN, f32::max))
                    .collect(),
                _ => (0..item.dim)
                    .map(|c| rows.iter().map(|r| r[c]).sum::<f32>() / rows.len() as f32)
                    .collect(),
            };
            let got = out.vector(i);
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-5, "{kind:?} text {i}: diff {diff}");
        }
    }
    let e = Model::load_with(&path, &opts, &BadHead).err().unwrap().to_string();
    assert!(e.contains("no_such.weight"), "{e}");
}
