//! Custom pooling heads through the public API only (as examples/custom_head.rs does).

use gg_testing as common;

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

// ---- Heads with their own weights ----

use gemma_graph::{GeluKind, LinearHead, PassLog, SentenceTransformersHead};

/// A safetensors file of f32 tensors (and metadata), as training code writes them.
fn safetensors_file(name: &str, tensors: &[(&str, Vec<usize>, Vec<f32>)], meta: &[(&str, &str)]) -> std::path::PathBuf {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, shape, _), b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta: std::collections::HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let out = safetensors::serialize(views, &Some(meta)).unwrap();
    let path = std::env::temp_dir().join(format!("gemma-graph-heads-{}-{name}", std::process::id()));
    std::fs::write(&path, out).unwrap();
    path
}

fn npy_file(name: &str, rows: usize, cols: usize, v: &[f32]) -> std::path::PathBuf {
    let mut h = gemma_graph::npy::header(rows, cols);
    h.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    // The tensor takes the file's stem as its name.
    let dir = std::env::temp_dir().join(format!("gemma-graph-heads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.npy"));
    std::fs::write(&path, h).unwrap();
    path
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    gemma_graph::ops::testing::XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).vec(n)
}

/// Every head op in one head: mean ‖ max → layer norm → linear → GELU(erf) → linear (npy
/// weight, bias) → SiLU → tanh → softmax.
struct EveryOp {
    st: std::path::PathBuf,
    npy: std::path::PathBuf,
}

impl PoolingHead for EveryOp {
    fn name(&self) -> &str {
        "every-op"
    }
    fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
        b.weights_from(&self.st)?;
        b.weights_from(&self.npy)?;
        let mean = b.pool(b.hidden(), PoolKind::Mean)?;
        let max = b.pool(b.hidden(), PoolKind::Max)?;
        let x = b.concat(mean, max)?;
        let x = b.layer_norm(x, "ln.weight", "ln.bias", 1e-5)?;
        let x = b.linear(x, "fc1.weight", Some("fc1.bias"))?;
        let x = b.gelu(x, GeluKind::Erf)?;
        let x = b.linear(x, "fc2", None)?;
        let x = b.add_bias(x, "fc2.bias")?;
        let x = b.silu(x)?;
        let x = b.tanh(x)?;
        b.softmax(x)
    }
}

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse for a reference; integrate instead (Simpson).
    let n = 2000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn every_head_op_matches_a_reference_computed_from_the_states() {
    let path = tiny_model_file("heads-ops", &TinySpec::default());
    let d = 64;
    let (h1, c) = (24, 5);
    let ln_w = random(2 * d, 1);
    let ln_b = random(2 * d, 2);
    let w1 = random(h1 * 2 * d, 3);
    let b1 = random(h1, 4);
    let w2 = random(c * h1, 5);
    let b2 = random(c, 6);
    let st = safetensors_file(
        "ops.safetensors",
        &[
            ("ln.weight", vec![2 * d], ln_w.clone()),
            ("ln.bias", vec![2 * d], ln_b.clone()),
            ("fc1.weight", vec![h1, 2 * d], w1.clone()),
            ("fc1.bias", vec![h1], b1.clone()),
            ("fc2.bias", vec![c], b2.clone()),
        ],
        &[],
    );
    let npy = npy_file("fc2", c, h1, &w2);
    let texts = ["the world", "another world of words", "a"];
    let opts = ModelOptions::default();
    let head = EveryOp {
        st: st.clone(),
        npy: npy.clone(),
    };
    for backend in [
        gemma_graph::Backend::Scalar,
        gemma_graph::Backend::Avx2,
        gemma_graph::Backend::Avx512,
    ] {
        let o = ModelOptions {
            backend: gemma_graph::BackendChoice::Force(backend),
            ..Default::default()
        };
        let model = match Model::load_with(&path, &o, &head) {
            Ok(m) => m,
            Err(Error::Backend(e)) => {
                eprintln!("skipping {backend}: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let out = model.embed(&texts, &EmbedOptions::default()).unwrap();
        // The per-token states from the same backend and precision: the fast precision rounds
        // activations to 16-bit blocks, so encoders on different tiers may differ by a step.
        let states = Model::load_with(&path, &o, &Hidden)
            .unwrap()
            .embed(&texts, &EmbedOptions::default())
            .unwrap();
        for (i, item) in states.items.iter().enumerate() {
            // The reference, in f64 from the per-token states.
            let rows: Vec<&[f32]> = item.values.chunks_exact(d).collect();
            let mut x: Vec<f64> = (0..d)
                .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / rows.len() as f64)
                .collect();
            x.extend((0..d).map(|j| rows.iter().map(|r| f64::from(r[j])).fold(f64::MIN, f64::max)));
            let mean = x.iter().sum::<f64>() / x.len() as f64;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
            let x: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(j, v)| (v - mean) / (var + 1e-5).sqrt() * f64::from(ln_w[j]) + f64::from(ln_b[j]))
                .collect();
            let lin = |w: &[f32], b: &[f32], x: &[f64], n: usize| -> Vec<f64> {
                (0..n)
                    .map(|o| {
                        x.iter()
                            .enumerate()
                            .map(|(k, v)| v * f64::from(w[o * x.len() + k]))
                            .sum::<f64>()
                            + f64::from(b[o])
                    })
                    .collect()
            };
            let x: Vec<f64> = lin(&w1, &b1, &x, h1)
                .iter()
                .map(|v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt())))
                .collect();
            let x: Vec<f64> = lin(&w2, &b2, &x, c)
                .iter()
                .map(|v| (v / (1.0 + (-v).exp())).tanh())
                .collect();
            let m = x.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = x.iter().map(|v| (v - m).exp()).sum();
            let want: Vec<f64> = x.iter().map(|v| (v - m).exp() / z).collect();
            let got = out.vector(i);
            assert_eq!(got.len(), c);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (f64::from(*g) - w).abs() < 2e-6,
                    "{backend} text {i}: {got:?} vs {want:?}"
                );
            }
        }
    }
    // Shape errors name the head and the op, at load.
    struct Wrong(std::path::PathBuf);
    impl PoolingHead for Wrong {
        fn name(&self) -> &str {
            "wrong"
        }
        fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
            b.weights_from(&self.0)?;
            let p = b.pool(b.hidden(), PoolKind::Mean)?;
            b.linear(p, "fc1.weight", None)
        }
    }
    let e = Model::load_with(&path, &opts, &Wrong(st.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("pooling head \"wrong\"")
            && e.contains("linear")
            && e.contains("[24, 128]")
            && e.contains("[24, 64]"),
        "{e}"
    );
    struct Missing(std::path::PathBuf);
    impl PoolingHead for Missing {
        fn name(&self) -> &str {
            "missing"
        }
        fn build(&self, b: &mut HeadBuilder<'_>) -> Result<Value, Error> {
            b.weights_from(&self.0)?;
            let p = b.pool(b.hidden(), PoolKind::Mean)?;
            b.add_bias(p, "nope")
        }
    }
    let e = Model::load_with(&path, &opts, &Missing(st)).err().unwrap().to_string();
    assert!(e.contains("no tensor \"nope\""), "{e}");
    let e = Model::load_with(
        &path,
        &opts,
        &Missing(std::path::PathBuf::from("/nonexistent.safetensors")),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("/nonexistent.safetensors"), "{e}");
}

#[test]
fn two_heads_share_one_encoder_pass() {
    let path = tiny_model_file("heads-two", &TinySpec::default());
    let d = 64;
    let classes = 3;
    let w = random(classes * d, 11);
    let b = random(classes, 12);
    let file = safetensors_file(
        "clf.safetensors",
        &[
            ("weight", vec![classes, d], w.clone()),
            ("bias", vec![classes], b.clone()),
        ],
        &[("labels", "[\"a\", \"b\", \"c\"]")],
    );
    let opts = ModelOptions::default();
    let texts = ["the world", "another world of words", "a", "tea"];
    let single = Model::load_with(&path, &opts, &SentenceTransformersHead).unwrap();
    let clf = LinearHead::classifier(&file);
    let both = Model::load_heads(&path, &opts, &[&SentenceTransformersHead, &clf]).unwrap();
    assert_eq!(both.heads().len(), 2);
    assert_eq!(
        (both.heads()[1].name.as_str(), both.heads()[1].dim),
        ("classifier", classes)
    );
    assert_eq!(
        both.user_weights().metadata(&file.display().to_string(), "labels"),
        Some("[\"a\", \"b\", \"c\"]")
    );

    let log = PassLog::new();
    let with_log = EmbedOptions {
        passes: Some(log.clone()),
        ..Default::default()
    };
    let one = single.embed(&texts, &with_log).unwrap();
    let single_passes = log.take().len();
    let two = both.embed(&texts, &with_log).unwrap();
    assert_eq!(log.take().len(), single_passes, "one forward pass serves both heads");
    // The encoder is compiled once: as many attention steps as layers.
    let attention = |m: &Model| {
        m.program()
            .steps()
            .iter()
            .filter(|s| s.kernel.ends_with(".attention"))
            .count()
    };
    assert_eq!(attention(&both), TinySpec::default().layers);
    assert_eq!(attention(&single), TinySpec::default().layers);
    // Memory: the second head adds its few per-text rows, not another encoder.
    let (a1, a2) = (single.plan().arena_bytes, both.plan().arena_bytes);
    assert!(a2 < a1 + a1 / 10, "arena {a1} -> {a2}");

    for i in 0..texts.len() {
        assert_eq!(two.vector(i), one.vector(i), "the default head keeps its exact vectors");
        let v = one.vector(i);
        let logits: Vec<f64> = (0..classes)
            .map(|c| (0..d).map(|k| f64::from(v[k]) * f64::from(w[c * d + k])).sum::<f64>() + f64::from(b[c]))
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        let got = two.head(1, i);
        for (c, g) in got.iter().enumerate() {
            assert!((f64::from(*g) - (logits[c] - m).exp() / z).abs() < 1e-6);
        }
    }
    let dup = Model::load_heads(&path, &opts, &[&SentenceTransformersHead, &SentenceTransformersHead]);
    assert!(matches!(dup, Err(Error::InvalidOption(_))));
}
