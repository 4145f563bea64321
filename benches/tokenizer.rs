//! Tokenizer throughput (MB/s of UTF-8 input) on the golden texts, pathological inputs, and
//! vocabulary load time. Single thread.

use gg_testing::bench as support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gemma_graph::loader::gguf::Gguf;
use gemma_graph::loader::tokenizer::{EncodeOptions, Tokenizer};

fn bench(c: &mut Criterion) {
    let g = Gguf::open(support::model_path()).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let texts = support::texts(&support::shared_dir().join("golden/tokens.jsonl"));
    let bytes: usize = texts.iter().map(String::len).sum();
    let opts = EncodeOptions {
        max_tokens: Some(2048),
        ..Default::default()
    };

    let mut group = c.benchmark_group("tokenizer");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("golden_9213_texts", |b| {
        let mut ids = Vec::new();
        b.iter(|| {
            for t in &texts {
                ids.clear();
                tok.encode_into(t, &opts, &mut ids);
            }
        })
    });
    let no_trunc = EncodeOptions::default();
    let pathological = [
        ("one_char_100KB", "a".repeat(100_000)),
        ("ab_x50000", "ab".repeat(50_000)),
        (
            "1MB_no_spaces",
            (0..1_000_000u32)
                .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
                .collect(),
        ),
        ("spaces_100KB", " ".repeat(100_000)),
    ];
    for (name, text) in &pathological {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(*name, |b| b.iter(|| tok.encode(text, &no_trunc)));
    }
    group.finish();

    let mut load = c.benchmark_group("tokenizer_load");
    load.sample_size(10);
    load.bench_function("vocab_262144_from_gguf", |b| {
        b.iter(|| Tokenizer::from_gguf(&g).unwrap())
    });
    load.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
