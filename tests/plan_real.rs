//! The static plan of the real model: valid at every batch size, and its arena bytes at
//! 16, 512 and 2048 tokens (printed; run with --nocapture).

mod common;

use common::*;
use gemma_graph::graph::{check_plan, plan};
use gemma_graph::Model;

#[test]
fn real_model_plans_are_valid_and_reported() {
    let model = Model::load(model_path()).unwrap();
    let g = model.graph();
    let mut last = 0;
    for t in [16, 512, 2048] {
        let p = plan(g, t, t).unwrap();
        check_plan(&p).unwrap();
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
