//! Every compiler pass, alone and in the default pipeline, keeps the vectors (max abs diff
//! ≤ 1e-5) on a small random model and actually rewrites it; the real model's fused graph
//! gives the unfused graph's vectors.
//!
//! The comparisons run in the exact precision (f32 arithmetic), where a rewrite can only move
//! a value by rounding. In the fast precision a rounding-level change upstream can move an
//! activation across a 16-bit quantization step (2⁻¹⁵ of its block's largest value), so there
//! the real model's fused and unfused vectors are held to cosine ≥ 0.99999 instead.

use gg_testing as common;

use common::tiny::{tiny_model_file, TinySpec};
use gemma_graph::graph::{prerequisites, Pipeline, PASSES};
use gemma_graph::{
    EmbedOptions, Error, HeadBuilder, Model, ModelOptions, PoolKind, PoolingHead, Precision, SentenceTransformersHead,
    Value,
};

const TEXTS: &[&str] = &[
    "the world",
    "another world of words, longer than the sliding window of eight",
    "a",
];

fn load(path: &std::path::Path, passes: Pipeline) -> Model {
    load_head(path, passes, &NoopHead, Precision::Exact)
}

fn load_head(path: &std::path::Path, passes: Pipeline, head: &dyn PoolingHead, precision: Precision) -> Model {
    Model::load_with(
        path,
        &ModelOptions {
            passes,
            precision,
            ..Default::default()
        },
        head,
    )
    .unwrap()
}

/// The default head with a no-op scale in front and a dead branch, so `remove-noops` and
/// `dce` have work too.
struct NoopHead;
impl PoolingHead for NoopHead {
    fn name(&self) -> &str {
        "noop+default"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        let x = b.scale(b.hidden(), 1.0)?;
        let _dead = b.scale(x, 2.0)?;
        let x = b.pool(x, PoolKind::Mean)?;
        let x = b.dense(x, "dense_2.weight")?;
        let x = b.dense(x, "dense_3.weight")?;
        b.l2_normalize(x)
    }
}

fn max_diff(a: &Model, b: &Model, texts: &[&str]) -> f32 {
    let (x, y) = (
        a.embed(texts, &EmbedOptions::default()).unwrap(),
        b.embed(texts, &EmbedOptions::default()).unwrap(),
    );
    (0..texts.len())
        .flat_map(|i| {
            x.vector(i)
                .iter()
                .zip(y.vector(i))
                .map(|(p, q)| (p - q).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f32::max)
}

#[test]
fn each_pass_preserves_outputs_on_a_small_model() {
    let path = tiny_model_file("passes", &TinySpec::default());
    let unfused = load(&path, Pipeline::None);
    for (name, _) in PASSES {
        // The pass after its prerequisites, against the prerequisites alone.
        let before: Vec<String> = prerequisites(name).iter().map(|p| p.to_string()).collect();
        let mut with = before.clone();
        with.push(name.to_string());
        let base = if before.is_empty() {
            load(&path, Pipeline::None)
        } else {
            load(&path, Pipeline::Custom(before))
        };
        let m = load(&path, Pipeline::Custom(with));
        let rec = m.pass_records().last().unwrap();
        assert!(rec.changed, "pass {name} found nothing to do on the tiny model");
        for (what, other) in [("the unfused graph", &unfused), ("its prerequisites alone", &base)] {
            let d = max_diff(other, &m, TEXTS);
            assert!(d <= 1e-5, "pass {name} vs {what}: max abs diff {d}");
        }
    }
    let fused = load(&path, Pipeline::Default);
    assert!(fused.graph().node_count() < unfused.graph().node_count());
    let d = max_diff(&unfused, &fused, TEXTS);
    assert!(d <= 1e-5, "default pipeline: max abs diff {d}");
}

#[test]
fn pipeline_names_parse() {
    assert_eq!("none".parse::<Pipeline>().unwrap(), Pipeline::None);
    assert_eq!("default".parse::<Pipeline>().unwrap(), Pipeline::Default);
    assert!("fuse-qkv,dce".parse::<Pipeline>().is_ok());
    let e = "fuse-everything".parse::<Pipeline>().unwrap_err();
    assert!(e.contains("fuse-qkv"), "{e}");
}

#[test]
fn real_model_fused_equals_unfused() {
    let path = common::model_path();
    let unfused = load_head(&path, Pipeline::None, &SentenceTransformersHead, Precision::Exact);
    let fused = load_head(&path, Pipeline::Default, &SentenceTransformersHead, Precision::Exact);
    let lines = common::read_jsonl(&common::golden_file("embeddings.jsonl"));
    // Short texts plus one of ~600 tokens (past the 256-token sliding reach).
    let mut texts: Vec<&str> = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .filter(|t| t.len() < 200)
        .take(8)
        .collect();
    let long = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .find(|t| (2000..4000).contains(&t.len()))
        .unwrap();
    texts.push(long);
    let d = max_diff(&unfused, &fused, &texts);
    assert!(d <= 1e-5, "max abs diff {d}");
    let fast = [Pipeline::None, Pipeline::Default].map(|p| {
        load_head(&path, p, &SentenceTransformersHead, Precision::Fast)
            .embed(&texts, &EmbedOptions::default())
            .unwrap()
    });
    for i in 0..texts.len() {
        let (a, b) = (fast[0].vector(i), fast[1].vector(i));
        let cos = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>()
            / (a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
                * b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt());
        assert!(
            cos >= 0.99999,
            "fast precision, text {i}: fused vs unfused cosine {cos}"
        );
    }
    assert!(
        fused.plan().arena_bytes < unfused.plan().arena_bytes,
        "fusion must shrink the arena"
    );
    println!(
        "nodes: {} built, {} fused; arena at {} tokens: {} unfused, {} fused",
        unfused.graph().node_count(),
        fused.graph().node_count(),
        fused.max_batch_tokens(),
        unfused.plan().arena_bytes,
        fused.plan().arena_bytes
    );
}
