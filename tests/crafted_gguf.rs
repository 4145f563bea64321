//! Crafted model files that used to load and then panic (or silently misbehave) at the first
//! embed: each now fails at load with an error naming the key, tensor, node or limit.

use gg_testing as common;

use common::tiny::{tiny_model_file, TinySpec};
use gemma_graph::loader::gguf::Value;
use gemma_graph::{Backend, BackendChoice, EmbedOptions, Model, ModelOptions, SentenceTransformersHead};

/// Load `spec` on every backend this CPU has; each must refuse with a message containing
/// every one of `needles`. Returns the scalar backend's message.
fn refused(tag: &str, spec: TinySpec, needles: &[&str]) -> String {
    let path = tiny_model_file(tag, &spec);
    let mut first = None;
    for &b in Backend::all().iter().filter(|b| b.is_available()) {
        let options = ModelOptions {
            backend: BackendChoice::Force(b),
            threads: 1,
            ..Default::default()
        };
        let msg = match Model::load_with(&path, &options, &SentenceTransformersHead) {
            Ok(m) => {
                let embedded = m.embed(&["the world"], &EmbedOptions::default());
                panic!("{tag} on {b}: loaded (embed gave {:?})", embedded.map(|e| e.len()));
            }
            Err(e) => e.to_string(),
        };
        for n in needles {
            assert!(msg.contains(n), "{tag} on {b}: {msg:?} does not mention {n:?}");
        }
        first.get_or_insert(msg);
    }
    std::fs::remove_file(&path).ok();
    first.expect("the scalar backend always runs")
}

fn meta(key: &str, v: Option<Value>) -> Vec<(String, Option<Value>)> {
    vec![(key.to_string(), v)]
}

#[test]
fn head_dim_past_the_attention_kernel_is_refused_at_load() {
    let spec = TinySpec {
        layers: 1,
        head_dim: 528,
        ..Default::default()
    };
    refused(
        "hd528",
        spec,
        &["blk.0.attention", "head dimension is 528", "limit of 512"],
    );
}

#[test]
fn too_many_query_heads_per_kv_head_is_refused_at_load() {
    let spec = TinySpec {
        layers: 1,
        heads: 18,
        kv_heads: 2,
        ..Default::default()
    };
    refused("group9", spec, &["query heads per kv head is 9", "limit of 8"]);
}

#[test]
fn matmul_row_past_the_kernel_limit_is_refused_at_load() {
    let spec = TinySpec {
        layers: 1,
        d_ff: 4160,
        ..Default::default()
    };
    refused(
        "k4160",
        spec,
        &["blk.0.ffn_down", "row length k is 4160", "limit of 4096"],
    );
}

#[test]
fn kv_heads_that_do_not_divide_the_heads_are_refused() {
    let spec = TinySpec {
        layers: 1,
        heads: 3,
        kv_heads: 2,
        ..Default::default()
    };
    refused(
        "kv",
        spec,
        &["attention.head_count_kv", "a divisor of attention.head_count"],
    );
}

#[test]
fn odd_head_size_is_refused() {
    let spec = TinySpec {
        layers: 1,
        heads: 32,
        head_dim: 33,
        ..Default::default()
    };
    refused("odd", spec, &["attention.key_length", "33", "even"]);
}

#[test]
fn absurd_context_length_is_refused() {
    let spec = TinySpec {
        layers: 1,
        meta: meta("context_length", Some(Value::U32(1_000_000_000))),
        ..Default::default()
    };
    refused("ctx", spec, &["context_length", "1000000000", "131072"]);
}

#[test]
fn non_finite_or_non_positive_epsilon_and_rope_bases_are_refused() {
    for (tag, key, v) in [
        ("eps-nan", "attention.layer_norm_rms_epsilon", f32::NAN),
        ("eps-neg", "attention.layer_norm_rms_epsilon", -1e-6),
        ("base-0", "rope.freq_base", 0.0),
        ("base-nan", "rope.freq_base", f32::NAN),
        ("swa-neg", "rope.freq_base_swa", -10_000.0),
    ] {
        let spec = TinySpec {
            layers: 1,
            meta: meta(key, Some(Value::F32(v))),
            ..Default::default()
        };
        refused(tag, spec, &[key, "finite positive"]);
    }
}

#[test]
fn block_count_that_disagrees_with_the_tensors_is_refused() {
    // Used to run one layer and ignore the other six.
    let spec = TinySpec {
        layers: 7,
        meta: meta("block_count", Some(Value::U32(1))),
        ..Default::default()
    };
    refused("blocks", spec, &["block_count", "tensors for 7 blocks"]);
}

#[test]
fn vocabulary_arrays_of_different_lengths_are_refused() {
    let (_, scores, _) = common::tiny::tiny_vocab();
    let spec = TinySpec {
        layers: 1,
        meta: meta("tokenizer.ggml.scores", Some(Value::f32s(scores[..10].to_vec()))),
        ..Default::default()
    };
    refused("vocab", spec, &["tokenizer.ggml.scores", "10 entries"]);
}

#[test]
fn dense_feature_counts_that_contradict_the_tensors_are_refused() {
    let spec = TinySpec {
        layers: 1,
        meta: meta("dense_2_feat_out", Some(Value::U32(5))),
        ..Default::default()
    };
    refused("dense", spec, &["dense_2_feat_in/dense_2_feat_out", "dense_2.weight"]);
}

#[test]
fn tensor_names_with_control_bytes_or_too_long_are_refused() {
    let spec = TinySpec {
        layers: 1,
        // C-string tools would read this as "output_norm.weight".
        extra: vec![("output_norm.weight\0".into(), 4)],
        ..Default::default()
    };
    refused("nul", spec, &["output_norm.weight\\0", "NUL or control"]);
    let spec = TinySpec {
        layers: 1,
        extra: vec![("x".repeat(65), 4)],
        ..Default::default()
    };
    refused("long", spec, &["longer than 64 bytes"]);
}

#[test]
fn compiled_graph_with_swapped_inputs_is_refused_at_load() {
    use gemma_graph::ops::{InputKind, Op};
    let path = tiny_model_file("swap", &TinySpec::default());
    let model = Model::load(&path).unwrap();
    let mut compiled = model.compiled();
    let inputs: Vec<_> = compiled
        .graph
        .node_ids()
        .filter(|&n| matches!(compiled.graph.node(n).op, Op::Input(_)))
        .collect();
    for n in inputs {
        let node = compiled.graph.node_mut(n);
        node.op = match node.op {
            Op::Input(InputKind::TokenIds) => Op::Input(InputKind::Positions),
            _ => Op::Input(InputKind::TokenIds),
        };
    }
    let err = Model::load_compiled(&path, &compiled, &ModelOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("TokenIds input") || err.contains("Positions input"),
        "{err}"
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn compiled_graph_naming_a_tensor_of_another_shape_is_refused() {
    let path = tiny_model_file("shape", &TinySpec::default());
    let model = Model::load(&path).unwrap();
    // The saved graph reads blk.0.attn_k's rows where it had blk.0.attn_q's (another shape).
    let ron = model.compiled().to_ron().unwrap();
    assert!(ron.contains("\"blk.0.attn_q.weight\""));
    let edited = ron.replacen("\"blk.0.attn_q.weight\"", "\"blk.0.attn_k.weight\"", 1);
    let compiled = gemma_graph::CompiledGraph::from_ron(&edited).unwrap();
    let err = Model::load_compiled(&path, &compiled, &ModelOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("does not match the model file"), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn asking_for_a_backend_the_cpu_lacks_names_the_missing_features() {
    for &b in Backend::all() {
        match b.table() {
            Ok(_) => assert!(b.missing_features().unwrap().is_empty()),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(b.name()), "{msg}");
                eprintln!("{b}: {msg}");
            }
        }
    }
    let unknown = Backend::from_name("bogus").unwrap_err().to_string();
    assert!(unknown.contains("bogus") && unknown.contains("avx2"), "{unknown}");
}

#[test]
fn a_nan_in_a_weight_is_refused_at_load_naming_the_tensor_and_element() {
    use gemma_graph::loader::gguf::Gguf;
    // A NaN scale in block 1 of row 5 of the (Q8_0, 64-column) token embedding table: element
    // (5 · 2 + 1) · 32.
    let path = tiny_model_file("nan-probe", &TinySpec::default());
    let g = Gguf::open(&path).unwrap();
    let t = g.tensor("token_embd.weight").unwrap();
    let at = (g.data_start() + t.offset) as usize + (5 * 2 + 1) * 34;
    drop(g);
    let mut bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    bytes[at..at + 2].copy_from_slice(&0x7e00u16.to_le_bytes()); // f16 NaN
    let path = std::env::temp_dir().join(format!("gemma-graph-test-{}-nan.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let e = Model::load_with(&path, &ModelOptions::default(), &SentenceTransformersHead)
        .err()
        .expect("a NaN weight is refused")
        .to_string();
    std::fs::remove_file(&path).ok();
    assert!(e.contains("token_embd.weight") && e.contains("element 352"), "{e}");
}
