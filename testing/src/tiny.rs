//! A tiny EmbeddingGemma-shaped GGUF with random weights, written by our own writer: fast
//! tests of loading, batching, passes and planning without the real model.

use gemma_graph::loader::gguf::{GgmlType, GgufWriter, Value};
use gemma_graph::ops::{BlockQ8_0, QK8_0};

pub struct TinySpec {
    pub layers: usize,
    pub d: usize,
    pub d_ff: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub window: u32,
    pub context: u32,
    pub dense: bool,
    pub arch: &'static str,
    /// Tensors to leave out.
    pub skip: Vec<String>,
    /// Metadata to change: a key (without the `{arch}.` prefix for the model's own keys)
    /// and its new value, or `None` to leave the key out.
    pub meta: Vec<(String, Option<Value>)>,
    /// Extra F32 vectors of this many values, under these names.
    pub extra: Vec<(String, usize)>,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            layers: 7,
            d: 64,
            d_ff: 96,
            heads: 2,
            kv_heads: 1,
            head_dim: 32,
            window: 8,
            context: 128,
            dense: true,
            arch: "gemma-embedding",
            skip: Vec::new(),
            meta: Vec::new(),
            extra: Vec::new(),
        }
    }
}

use gemma_graph::ops::testing::XorShift as Rng;

/// Pieces: 4 controls, 256 byte pieces, `▁` and a–z, then some merges.
pub fn tiny_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![3; 4];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let mut normal: Vec<String> = vec!["▁".into()];
    normal.extend((b'a'..=b'z').map(|c| (c as char).to_string()));
    for m in [
        "th", "he", "▁t", "▁the", "in", "er", "an", "▁a", "on", "re", "▁w", "or", "▁wor", "ld", "▁world",
    ] {
        normal.push(m.into());
    }
    let mut scores = vec![0.0; tokens.len()];
    for (i, p) in normal.into_iter().enumerate() {
        tokens.push(p);
        types.push(1);
        scores.push(-(i as f32));
    }
    tokens.push("  ".into());
    types.push(4);
    scores.push(-1000.0);
    (tokens, scores, types)
}

pub fn tiny_gguf(spec: &TinySpec) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (tokens, scores, types) = tiny_vocab();
    let vocab = tokens.len();
    let a = spec.arch;
    let mut w = Meta {
        w: GgufWriter::new(),
        arch: a,
        meta: &spec.meta,
        seen: Vec::new(),
    };
    w.add("general.architecture", Value::String(a.into()));
    let u = |v: usize| Value::U32(v as u32);
    w.add(format!("{a}.block_count"), u(spec.layers));
    w.add(format!("{a}.context_length"), Value::U32(spec.context));
    w.add(format!("{a}.embedding_length"), u(spec.d));
    w.add(format!("{a}.feed_forward_length"), u(spec.d_ff));
    w.add(format!("{a}.attention.head_count"), u(spec.heads));
    w.add(format!("{a}.attention.head_count_kv"), u(spec.kv_heads));
    w.add(format!("{a}.attention.key_length"), u(spec.head_dim));
    w.add(format!("{a}.attention.value_length"), u(spec.head_dim));
    w.add(format!("{a}.rope.freq_base"), Value::F32(1e6));
    w.add(format!("{a}.rope.freq_base_swa"), Value::F32(1e4));
    w.add(format!("{a}.attention.layer_norm_rms_epsilon"), Value::F32(1e-6));
    w.add(format!("{a}.attention.sliding_window"), Value::U32(spec.window));
    w.add(format!("{a}.pooling_type"), Value::U32(1));
    let dense_out = spec.d * 2;
    if spec.dense {
        w.add(format!("{a}.dense_2_feat_in"), u(spec.d));
        w.add(format!("{a}.dense_2_feat_out"), u(dense_out));
        w.add(format!("{a}.dense_3_feat_in"), u(dense_out));
        w.add(format!("{a}.dense_3_feat_out"), u(spec.d));
    }
    w.add("tokenizer.ggml.model", Value::String("llama".into()));
    w.add("tokenizer.ggml.tokens", Value::strings(tokens));
    w.add("tokenizer.ggml.scores", Value::f32s(scores));
    w.add("tokenizer.ggml.token_type", Value::i32s(types));
    w.add("tokenizer.ggml.bos_token_id", Value::U32(2));
    w.add("tokenizer.ggml.eos_token_id", Value::U32(1));
    w.add("tokenizer.ggml.unknown_token_id", Value::U32(3));
    w.add("tokenizer.ggml.add_bos_token", Value::Bool(true));
    w.add("tokenizer.ggml.add_eos_token", Value::Bool(true));

    w.add_rest();
    let mut w = w.w;
    let mat = |w: &mut GgufWriter, rng: &mut Rng, name: String, rows: usize, cols: usize, scale: f32| {
        if spec.skip.contains(&name) {
            return;
        }
        let vals: Vec<f32> = (0..rows * cols).map(|_| rng.unit() * scale).collect();
        let blocks: Vec<BlockQ8_0> = vals
            .chunks_exact(QK8_0)
            .map(|c| BlockQ8_0::quantize(c.try_into().unwrap()))
            .collect();
        w.add_tensor(
            name,
            &[rows, cols],
            GgmlType::Q8_0,
            blocks.iter().flat_map(|b| b.to_bytes()).collect(),
        );
    };
    let (d, hd, nh, nkv, ff) = (spec.d, spec.head_dim, spec.heads, spec.kv_heads, spec.d_ff);
    let s = 1.0 / (d as f32).sqrt();
    mat(&mut w, &mut rng, "token_embd.weight".into(), vocab, d, 0.5);
    let mut norms = Vec::new();
    for l in 0..spec.layers {
        let n = |leaf: &str| format!("blk.{l}.{leaf}.weight");
        mat(&mut w, &mut rng, n("attn_q"), nh * hd, d, s);
        mat(&mut w, &mut rng, n("attn_k"), nkv * hd, d, s);
        mat(&mut w, &mut rng, n("attn_v"), nkv * hd, d, s);
        mat(&mut w, &mut rng, n("attn_output"), d, nh * hd, s);
        mat(&mut w, &mut rng, n("ffn_gate"), ff, d, s);
        mat(&mut w, &mut rng, n("ffn_up"), ff, d, s);
        mat(&mut w, &mut rng, n("ffn_down"), d, ff, 1.0 / (ff as f32).sqrt());
        for (leaf, len) in [
            ("attn_norm", d),
            ("attn_q_norm", hd),
            ("attn_k_norm", hd),
            ("post_attention_norm", d),
            ("ffn_norm", d),
            ("post_ffw_norm", d),
        ] {
            norms.push((n(leaf), len));
        }
    }
    norms.push(("output_norm.weight".into(), d));
    for (name, len) in norms {
        if spec.skip.contains(&name) {
            continue;
        }
        let vals: Vec<f32> = (0..len).map(|_| 1.0 + 0.2 * rng.unit()).collect();
        w.add_tensor(
            name,
            &[len],
            GgmlType::F32,
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
    }
    for (name, len) in &spec.extra {
        let bytes = (0..*len).flat_map(|_| 1f32.to_le_bytes()).collect();
        w.add_tensor(name.clone(), &[*len], GgmlType::F32, bytes);
    }
    if spec.dense {
        mat(&mut w, &mut rng, "dense_2.weight".into(), dense_out, d, s);
        mat(
            &mut w,
            &mut rng,
            "dense_3.weight".into(),
            d,
            dense_out,
            1.0 / (dense_out as f32).sqrt(),
        );
    }
    w.to_bytes()
}

/// The writer with the spec's metadata changes applied as keys are added.
struct Meta<'a> {
    w: GgufWriter,
    arch: &'a str,
    meta: &'a [(String, Option<Value>)],
    seen: Vec<String>,
}

impl Meta<'_> {
    fn add(&mut self, key: impl Into<String>, value: Value) {
        let key: String = key.into();
        let short = key.strip_prefix(&format!("{}.", self.arch)).unwrap_or(&key).to_string();
        self.seen.push(short.clone());
        match self.meta.iter().find(|(k, _)| *k == short || *k == key) {
            Some((_, Some(v))) => {
                self.w.add(key, v.clone());
            }
            Some((_, None)) => {}
            None => {
                self.w.add(key, value);
            }
        }
    }
}

impl Meta<'_> {
    /// Changes to keys the model does not write: added as they are.
    fn add_rest(&mut self) {
        for (k, v) in self.meta {
            if let Some(v) = v {
                if !self.seen.contains(k) {
                    self.w.add(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Write a tiny model to a temporary file named after `tag`; returns its path.
pub fn tiny_model_file(tag: &str, spec: &TinySpec) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("gemma-graph-test-{}-{tag}.gguf", std::process::id()));
    std::fs::write(&path, tiny_gguf(spec)).unwrap();
    path
}
