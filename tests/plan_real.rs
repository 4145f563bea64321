//! The static plan of the real model: valid at every batch size, and its arena bytes at
//! 16, 512 and 2048 tokens before and after fusion (printed; run with --nocapture).

use gg_testing as common;

use common::*;
use gemma_graph::backends::Program;
use gemma_graph::graph::check_plan;
use gemma_graph::model::MAX_TEXTS_PER_BATCH;
use gemma_graph::{Model, ModelOptions, Pipeline, SentenceTransformersHead};

#[test]
fn real_model_plans_are_valid_and_reported() {
    let model = Model::load(model_path()).unwrap();
    let unfused = Model::load_with(
        model_path(),
        &ModelOptions {
            passes: Pipeline::None,
            ..Default::default()
        },
        &SentenceTransformersHead,
    )
    .unwrap();
    let g = model.graph();
    let table = model.backend().table().unwrap();
    let mut last = 0;
    for t in [16, 512, 2048] {
        let seqs = (t / 2).min(MAX_TEXTS_PER_BATCH);
        // Planned as lowering plans them: values plus the chosen kernels' scratch.
        let unfused_program = Program::compile(unfused.graph(), table, t, seqs, gemma_graph::Precision::Fast).unwrap();
        let before = unfused_program.plan();
        check_plan(before).unwrap();
        let program = Program::compile(g, table, t, seqs, gemma_graph::Precision::Fast).unwrap();
        let p = program.plan();
        println!("T = {t:>4}: unfused graph arena {:>11} bytes", before.arena_bytes);
        check_plan(p).unwrap();
        assert!(p.arena_bytes <= p.total_value_bytes);
        assert!(p.arena_bytes > last, "bigger batches need more arena");
        last = p.arena_bytes;
        println!(
            "T = {t:>4}: arena {:>11} bytes ({:.1} MiB), peak live {:>11}, all values {:>12} bytes, {} values",
            p.arena_bytes,
            p.arena_bytes as f64 / (1 << 20) as f64,
            p.peak_live_bytes,
            p.total_value_bytes,
            p.values.len()
        );
    }
}
