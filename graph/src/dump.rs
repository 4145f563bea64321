//! Seeing what the compiler did: a text listing, Graphviz DOT, RON (save/load), and an SVG
//! picture of the memory plan drawn here (no external tools).

use std::collections::BTreeMap;
use std::fmt::Write;

use gg_ops::Op;
use serde::{Deserialize, Serialize};

use crate::ir::{Graph, NodeId};
use crate::plan::Plan;

/// A graph with (optionally) its plan: what `dump --format ron` writes and what a model can
/// be loaded from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompiledGraph {
    pub graph: Graph,
    pub plan: Option<Plan>,
}

impl CompiledGraph {
    pub fn to_ron(&self) -> Result<String, ron::Error> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default().struct_names(true))
    }

    pub fn from_ron(text: &str) -> Result<CompiledGraph, ron::error::SpannedError> {
        ron::from_str(text)
    }
}

/// Which nodes to show: all, or those of the first `layers` layers plus the layer-less ones
/// (inputs, embedding, final norm, head).
pub fn visible(graph: &Graph, id: NodeId, layers: Option<usize>) -> bool {
    match (layers, graph.node(id).layer) {
        (Some(max), Some(l)) => l < max,
        _ => true,
    }
}

/// An op with its parameters, for listings.
pub fn op_text(op: &Op) -> String {
    match op {
        Op::Weight(w) => format!("weight#{w}"),
        Op::Embed { scale } => format!("embed(scale={scale})"),
        Op::RmsNorm { eps, group } => format!("rms_norm(group={group}, eps={eps:e})"),
        Op::Rope { base, head_dim } => format!("rope(base={base}, hd={head_dim})"),
        Op::Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            scale,
            window,
            packed,
        } => format!(
            "attention(heads={n_heads}/{n_kv_heads}, hd={head_dim}, scale={scale}, window={}{})",
            window.map_or("global".to_string(), |w| format!("±{w}")),
            if *packed { ", packed qkv" } else { "" }
        ),
        Op::Scale(f) => format!("scale({f})"),
        Op::SliceCols { start, len } => format!("slice_cols({start}..{})", start + len),
        Op::RmsNormRope {
            eps,
            head_dim,
            base,
            cols,
        } => format!(
            "rms_norm_rope(hd={head_dim}, base={base}, eps={eps:e}{})",
            cols.map_or(String::new(), |(s, l)| format!(", cols {s}..{}", s + l))
        ),
        Op::MatMul(gg_ops::MatMulSpec {
            in_cols: Some((s, l)), ..
        }) => format!("{}(cols {s}..{})", op.name(), s + l),
        Op::AddRmsNorm { eps } => format!("add_rms_norm(eps={eps:e})"),
        Op::PoolHead {
            kind,
            n_dense,
            normalize,
        } => format!("pool_head({kind:?}, dense={n_dense}, l2={normalize})").to_lowercase(),
        other => other.name().to_string(),
    }
}

/// Node counts per op name.
pub fn op_counts(graph: &Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for n in graph.node_ids() {
        *m.entry(graph.node(n).op.name()).or_default() += 1;
    }
    m
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The readable listing: one line per node in execution order, then a summary. `before` is
/// the graph as built, for the per-op counts before/after fusion.
pub fn to_text(graph: &Graph, plan: Option<&Plan>, before: Option<&Graph>, layers: Option<usize>) -> String {
    let mut out = String::new();
    let order = graph.topo_order().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:>5}  {:<34} {:<48} {:<18} {:<5} {:<12} {}",
        "node",
        "label",
        "op",
        "inputs",
        "dtype",
        "shape",
        if plan.is_some() { "arena offset+bytes" } else { "" }
    );
    for &n in order.iter().filter(|&&n| visible(graph, n, layers)) {
        let node = graph.node(n);
        let inputs: Vec<String> = graph.inputs(n).iter().map(|i| i.index().to_string()).collect();
        let slot = match plan.and_then(|p| p.value(n)) {
            Some(v) => {
                let mut s = format!("{:>10} +{}", v.slot.offset, v.slot.bytes);
                if v.in_place {
                    s.push_str(" (in place)");
                }
                if let Some(sc) = plan.and_then(|p| p.scratch(n)) {
                    let _ = write!(s, " scratch {}+{}", sc.offset, sc.bytes);
                }
                s
            }
            None if matches!(node.op, Op::Weight(_)) => "(weight, not in arena)".into(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>5}  {:<34} {:<48} {:<18} {:<5} {:<12} {slot}",
            n.index(),
            node.label,
            op_text(&node.op),
            inputs.join(","),
            node.dtype.name(),
            node.shape.to_string()
        );
        if !node.fused_from.is_empty() {
            let _ = writeln!(out, "{:>7}replaces: {}", "", node.fused_from.join(" | "));
        }
    }
    let _ = writeln!(out, "\nsummary");
    let after = op_counts(graph);
    let built = before.map(op_counts).unwrap_or_default();
    let names: std::collections::BTreeSet<&str> = after.keys().chain(built.keys()).copied().collect();
    if before.is_some() {
        let _ = writeln!(out, "  {:<20} {:>8} {:>8}", "op", "built", "fused");
    }
    for name in names {
        let a = after.get(name).copied().unwrap_or(0);
        match before {
            Some(_) => {
                let _ = writeln!(out, "  {name:<20} {:>8} {a:>8}", built.get(name).copied().unwrap_or(0));
            }
            None => {
                let _ = writeln!(out, "  {name:<20} {a:>8}");
            }
        }
    }
    match before {
        Some(b) => {
            let _ = writeln!(out, "  {:<20} {:>8} {:>8}", "nodes", b.node_count(), graph.node_count());
        }
        None => {
            let _ = writeln!(out, "  {:<20} {:>8}", "nodes", graph.node_count());
        }
    }
    let user: Vec<&crate::WeightDesc> = graph
        .weights()
        .iter()
        .filter(|w| matches!(w.source, crate::WeightSource::User { .. }))
        .collect();
    if !user.is_empty() {
        let _ = writeln!(out, "\nweights of the heads' own files");
        for w in user {
            if let crate::WeightSource::User { file, tensor } = &w.source {
                let _ = writeln!(
                    out,
                    "  {tensor:<24} {:<5} {:<12} {file}",
                    w.dtype.name(),
                    w.shape.to_string()
                );
            }
        }
    }
    if let Some(p) = plan {
        let _ = writeln!(
            out,
            "  plan for {} tokens / {} texts: arena {} bytes ({}), peak live {} bytes, {} values would take {} bytes unplanned",
            p.max_tokens,
            p.max_seqs,
            p.arena_bytes,
            human(p.arena_bytes),
            p.peak_live_bytes,
            p.values.len(),
            p.total_value_bytes
        );
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: one cluster per layer; fused nodes list what they replaced.
pub fn to_dot(graph: &Graph, layers: Option<usize>) -> String {
    let mut out = String::from(
        "digraph gemma_graph {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
    );
    let mut by_layer: BTreeMap<Option<usize>, Vec<NodeId>> = BTreeMap::new();
    for n in graph.node_ids().filter(|&n| visible(graph, n, layers)) {
        by_layer.entry(graph.node(n).layer).or_default().push(n);
    }
    for (layer, nodes) in &by_layer {
        if let Some(l) = layer {
            let _ = writeln!(
                out,
                "  subgraph cluster_layer_{l} {{\n    label=\"layer {l}\"; style=rounded; color=gray;"
            );
        }
        for &n in nodes {
            let node = graph.node(n);
            let mut label = format!(
                "{}\\n{}\\n{} {}",
                dot_escape(&node.label),
                dot_escape(&op_text(&node.op)),
                node.dtype,
                node.shape
            );
            let style = if matches!(node.op, Op::Weight(_)) {
                ", shape=note, color=gray50, fontcolor=gray30"
            } else if !node.fused_from.is_empty() {
                label.push_str("\\nreplaces:");
                for f in &node.fused_from {
                    let _ = write!(label, "\\n  {}", dot_escape(f));
                }
                ", style=filled, fillcolor=\"#dbeafe\""
            } else {
                ""
            };
            let _ = writeln!(out, "    n{} [label=\"{label}\"{style}];", n.index());
        }
        if layer.is_some() {
            out.push_str("  }\n");
        }
    }
    for n in graph.node_ids().filter(|&n| visible(graph, n, layers)) {
        for (slot, i) in graph.inputs(n).into_iter().enumerate() {
            if visible(graph, i, layers) {
                let _ = writeln!(
                    out,
                    "  n{} -> n{} [label=\"{slot}\", fontsize=8];",
                    i.index(),
                    n.index()
                );
            }
        }
    }
    for o in graph.outputs() {
        let _ = writeln!(out, "  n{} [peripheries=2];", o.index());
    }
    out.push_str("}\n");
    out
}

/// Text for an XML attribute or element: `&` first, so the entities added after it are not
/// escaped again.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(op: &Op) -> &'static str {
    match op {
        Op::MatMul(_) => "#60a5fa",
        Op::Attention { .. } => "#f59e0b",
        Op::RmsNorm { .. } | Op::AddRmsNorm { .. } | Op::RmsNormRope { .. } | Op::L2Norm => "#34d399",
        Op::Rope { .. } | Op::SliceCols { .. } => "#a78bfa",
        Op::Input(_) | Op::Embed { .. } => "#f472b6",
        Op::Pool(_) | Op::PoolHead { .. } => "#fb7185",
        _ => "#9ca3af",
    }
}

/// The memory plan as a picture: execution steps left to right, arena offsets top to
/// bottom, one bar per value (hatched for op scratch).
pub fn plan_to_svg(graph: &Graph, plan: &Plan, layers: Option<usize>) -> String {
    let steps = plan
        .values
        .iter()
        .filter(|v| visible(graph, v.node, layers))
        .map(|v| v.first + 1)
        .max()
        .unwrap_or(1);
    let arena = plan.arena_bytes.max(1) as f64;
    let (w, h, left, top) = (1200.0, 600.0, 90.0, 40.0);
    let sx = w / steps as f64;
    let sy = h / arena;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"monospace\" font-size=\"11\">",
        w + left + 20.0,
        h + top + 50.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"20\" font-size=\"14\">memory plan: {} values in a {}-byte arena (peak live {}), {} tokens / {} texts</text>",
        plan.values.len(),
        plan.arena_bytes,
        plan.peak_live_bytes,
        plan.max_tokens,
        plan.max_seqs
    );
    let _ = writeln!(out, "<defs><pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\"><path d=\"M0,4 l4,-4\" stroke=\"#444\" stroke-width=\"1\"/></pattern></defs>");
    let _ = writeln!(
        out,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"#f9fafb\" stroke=\"#111\"/>"
    );
    for v in plan.values.iter().filter(|v| visible(graph, v.node, layers)) {
        let last = if v.last == usize::MAX {
            steps - 1
        } else {
            v.last.min(steps - 1)
        };
        let x = left + v.first as f64 * sx;
        let width = ((last - v.first + 1) as f64 * sx).max(1.0);
        let y = top + v.slot.offset as f64 * sy;
        let height = (v.slot.bytes as f64 * sy).max(0.5);
        let node = graph.node(v.node);
        let fill = if v.scratch { "url(#hatch)" } else { color(&node.op) };
        let _ = writeln!(
            out,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{width:.2}\" height=\"{height:.2}\" fill=\"{fill}\" stroke=\"#1f2937\" stroke-width=\"0.3\"><title>{}{} {} {} bytes @ {} steps {}..{}</title></rect>",
            xml_escape(&node.label),
            if v.scratch { " (scratch)" } else { "" },
            node.op.name(),
            v.slot.bytes,
            v.slot.offset,
            v.first,
            last
        );
    }
    for i in 0..=4 {
        let y = top + h * i as f64 / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 4.0,
            human((arena * i as f64 / 4.0) as usize)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{}\">execution step → (0..{}), arena offset ↓</text>",
        top + h + 20.0,
        steps - 1
    );
    let legend = [
        ("matmul", "#60a5fa"),
        ("attention", "#f59e0b"),
        ("norms", "#34d399"),
        ("rope/slice", "#a78bfa"),
        ("embed/input", "#f472b6"),
        ("pooling", "#fb7185"),
        ("other", "#9ca3af"),
    ];
    for (i, (name, c)) in legend.iter().enumerate() {
        let x = left + i as f64 * 130.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            top + h + 30.0,
            x + 16.0,
            top + h + 40.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_escape_does_not_escape_twice() {
        assert_eq!(super::xml_escape("a<b&c"), "a&lt;b&amp;c");
        assert_eq!(super::xml_escape("&lt;"), "&amp;lt;");
    }
}
