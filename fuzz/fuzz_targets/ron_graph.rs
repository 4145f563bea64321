//! Fuzz loading a saved graph: any text must parse into a graph that validates, or fail with
//! an error; a graph that parses must validate or be refused without a panic, and so must
//! planning it.
//!
//! `cargo fuzz run ron_graph` (seed the corpus with `gemma-graph dump --format ron`).
#![no_main]

use gg_graph::CompiledGraph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(compiled) = CompiledGraph::from_ron(text) else { return };
    if compiled.graph.validate().is_ok() {
        let _ = gg_graph::plan(&compiled.graph, 64, 8);
        let _ = compiled.graph.topo_order();
    }
});
