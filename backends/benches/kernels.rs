//! Kernel throughput per backend and precision on the model's shapes (random data), one thread:
//! `cargo bench -p gg-backends --bench kernels`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gg_backends::fast::{qrow_words, QRows};
use gg_backends::kernels::{AttentionArgs, AttentionIo};
use gg_backends::team::parallel_for;
use gg_backends::{Activations, Backend, Par, SeqSpan, Team, WeightView};
use gg_ops::{BlockQ8_0, DType};

fn random(n: usize, seed: u64) -> Vec<f32> {
    gg_ops::testing::XorShift(seed).vec(n)
}

/// A random `(n, k)` Q8_0 weight's blocks.
fn q8_weight(n: usize, k: usize, seed: u64) -> Vec<BlockQ8_0> {
    random(k * n, seed)
        .chunks_exact(32)
        .map(|c| BlockQ8_0::quantize(c.try_into().unwrap()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let (k, n) = (768, 1152);
    let w = q8_weight(n, k, 1);
    let wv = WeightView::new(DType::Q8_0, n, k, bytemuck::cast_slice(&w)).unwrap();
    for rows in [16usize, 512] {
        let x = random(rows * k, 2);
        let mut out = vec![0f32; rows * n];
        let mut g = c.benchmark_group(format!("matmul_q8_0_{rows}x{k}x{n}"));
        g.throughput(Throughput::Elements((rows * k * n) as u64));
        g.sample_size(10);
        // Elements are multiply-adds: criterion's "elem/s" reads as MAC/s (half the FLOP/s).
        for &b in Backend::all().iter().filter(|b| b.is_available()) {
            let table = b.table().unwrap();
            let kern = table.weight(DType::Q8_0).unwrap();
            g.bench_function(format!("{}/exact", b.name()), |bn| {
                bn.iter(|| (kern.matmul)(Activations::dense(&x, rows, k), wv, &mut out, n, Par::SERIAL))
            });
            // The fast precision as a lowered program runs it: the rows quantized once into
            // planned memory, then the integer kernels.
            let fast = table.fast(DType::Q8_0).unwrap();
            let packed = (fast.pack)(wv, 1).unwrap();
            let mut words = vec![0u32; rows * qrow_words(k)];
            g.bench_function(format!("{}/fast", b.name()), |bn| {
                bn.iter(|| {
                    (fast.quantize_rows)(Activations::dense(&x, rows, k), None, &mut words, false, Par::SERIAL);
                    let q = QRows::new(&words, k, rows, false);
                    (fast.matmul_q)(&q, &packed, &mut out, n, Par::SERIAL)
                })
            });
            // The int8 precision, where this CPU runs the tier's int8 kernels.
            if let (Some(int8), Ok(())) = (table.int8(DType::Q8_0), table.int8_available()) {
                let packed = (int8.pack)(wv, 1).unwrap();
                g.bench_function(format!("{}/int8", b.name()), |bn| {
                    bn.iter(|| {
                        (int8.quantize_rows)(Activations::dense(&x, rows, k), None, &mut words, false, Par::SERIAL);
                        let q = QRows::new(&words, k, rows, false);
                        (int8.matmul_q)(&q, &packed, &mut out, n, Par::SERIAL)
                    })
                });
            }
        }
        g.finish();
    }
}

fn bench_attention(c: &mut Criterion) {
    let (heads, kv, hd, t) = (3usize, 1usize, 256usize, 512usize);
    let w = (heads + 2 * kv) * hd;
    let qkv = random(t * w, 3);
    let seqs = [SeqSpan { start: 0, len: t }];
    let row_seq = vec![0u32; t];
    let mut g = c.benchmark_group(format!("attention_{t}x{heads}x{hd}_window256"));
    g.throughput(Throughput::Elements((t * heads * 513 * hd * 2) as u64));
    g.sample_size(10);
    for &b in Backend::all().iter().filter(|b| b.is_available()) {
        let kern = b.table().unwrap();
        let mut buf = qkv.clone();
        g.bench_function(b.name(), |bn| {
            bn.iter(|| {
                buf.copy_from_slice(&qkv);
                let args = AttentionArgs {
                    io: AttentionIo::Packed { qkv: &mut buf },
                    seqs: &seqs,
                    row_seq: &row_seq,
                    n_heads: heads,
                    n_kv_heads: kv,
                    head_dim: hd,
                    scale: 0.0625,
                    window: Some(256),
                };
                (kern.attention)(args, Par::SERIAL)
            })
        });
    }
    g.finish();
}

/// What a parallel step costs beyond its work, two ways:
/// - `sync_dispatch_2_units`: a step of two ~1 µs units on 2 threads, through a rayon
///   fork-join (what every operator paid before the team) and through the model's persistent
///   team (what it pays now), against the two units run serially;
/// - `sync_fast_matmul_1x32x512`: a fast matmul so small (1 token × 32 × 512) that its time is
///   the dispatch, serially and on a 2-thread team.
fn bench_sync(c: &mut Criterion) {
    // About a microsecond of work per unit, so that both threads really take one.
    let unit = |u: usize| {
        let mut a = u as u64;
        for b in 0..1000u64 {
            a = std::hint::black_box(a.wrapping_mul(31).wrapping_add(b));
        }
        std::hint::black_box(a);
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let team = Team::new(2).unwrap();
    let mut g = c.benchmark_group("sync_dispatch_2_units");
    g.bench_function("serial", |bn| bn.iter(|| (0..2).for_each(unit)));
    g.bench_function("rayon_fork_join", |bn| {
        use rayon::prelude::*;
        pool.install(|| bn.iter(|| (0..2usize).into_par_iter().for_each(unit)))
    });
    g.bench_function("team", |bn| team.install(|| bn.iter(|| parallel_for(2, unit))));
    g.finish();

    let (k, n) = (32, 512);
    let w = q8_weight(n, k, 5);
    let wv = WeightView::new(DType::Q8_0, n, k, bytemuck::cast_slice(&w)).unwrap();
    let x = random(k, 6);
    let mut out = vec![0f32; n];
    let fast = Backend::Scalar.table().unwrap().fast(DType::Q8_0).unwrap();
    let packed = (fast.pack)(wv, 1).unwrap();
    let mut words = vec![0u32; qrow_words(k)];
    (fast.quantize_rows)(Activations::dense(&x, 1, k), None, &mut words, false, Par::SERIAL);
    let q = QRows::new(&words, k, 1, false);
    let mut g = c.benchmark_group("sync_fast_matmul_1x32x512");
    for threads in [1usize, 2] {
        let team = Team::new(threads).unwrap();
        g.bench_function(format!("{threads}_threads"), |bn| {
            team.install(|| bn.iter(|| (fast.matmul_q)(&q, &packed, &mut out, n, Par { threads })))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_attention, bench_sync);
criterion_main!(benches);
