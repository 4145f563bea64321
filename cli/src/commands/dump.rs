//! `gemma-graph dump [--model PATH] [--stage built|fused|planned] [--format text|dot|ron|svg]`

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use gemma_graph::graph::dump::{plan_to_svg, to_dot, to_text};
use gemma_graph::graph::{CompiledGraph, Graph, Pipeline};
use gemma_graph::{LinearHead, Model, ModelOptions, SentenceTransformersHead};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The graph as the model builder made it.
    Built,
    /// After the compiler passes.
    Fused,
    /// After the passes, with the memory plan.
    Planned,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Ron,
    Svg,
}

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file (default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "planned")]
    stage: Stage,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Show only the first N transformer layers (plus embedding, final norm and head).
    #[arg(long)]
    layers: Option<usize>,
    /// Compiler passes: none, default, or a comma-separated list.
    #[arg(long, default_value = "default")]
    passes: Pipeline,
    /// Largest batch in tokens the plan is made for (default: the context length).
    #[arg(long, default_value_t = 0)]
    tokens: usize,
    /// Kernel tier to lower for ("auto": the best this CPU supports).
    #[arg(long, value_parser = super::backend_parser(), default_value = "auto")]
    backend: super::BackendArg,
    /// Matmul arithmetic the steps are lowered for (see `run --help`).
    #[arg(long, value_enum, default_value = "fast")]
    precision: super::PrecisionArg,
    /// Also build a head trained on the embeddings (as `run --head`).
    #[arg(long, value_name = "FILE.safetensors")]
    head: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "linear-softmax", requires = "head")]
    head_kind: super::run::HeadKind,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// `dot -Tsvg` of a DOT text, or a message naming the package to install.
fn graphviz_svg(dot: &str) -> Result<Vec<u8>> {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "rendering a graph as SVG needs Graphviz's `dot`, which is not installed (Debian/Ubuntu: \
             apt install graphviz); or use --format dot, or --stage planned --format svg for the memory plan"
        ),
        Err(e) => return Err(e).context("running dot"),
    };
    child.stdin.take().expect("piped").write_all(dot.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("dot failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

pub fn run(args: Args) -> Result<()> {
    let options = ModelOptions {
        passes: args.passes,
        max_batch_tokens: args.tokens,
        backend: args.backend.choice(),
        precision: args.precision.into(),
        ..Default::default()
    };
    let path = crate::input::model_path(args.model);
    super::check_model_path(&path)?;
    let model = match &args.head {
        None => Model::load_with(&path, &options, &SentenceTransformersHead)?,
        Some(file) => {
            let head = LinearHead {
                softmax: args.head_kind == super::run::HeadKind::LinearSoftmax,
                ..LinearHead::classifier(file)
            };
            Model::load_heads(&path, &options, &[&SentenceTransformersHead, &head])?
        }
    };
    let built: &Graph = model.built_graph().expect("built from the GGUF");
    let graph = if args.stage == Stage::Built {
        built
    } else {
        model.graph()
    };
    let plan = (args.stage == Stage::Planned).then(|| model.plan());

    let bytes: Vec<u8> = match args.format {
        Format::Text => {
            let mut text = format!(
                "gemma-graph dump: stage {}, backend {}, precision {}, {} threads\n",
                match args.stage {
                    Stage::Built => "built",
                    Stage::Fused => "fused",
                    Stage::Planned => "planned",
                },
                model.backend(),
                model.precision(),
                model.threads()
            );
            if args.stage != Stage::Built {
                for r in model.pass_records() {
                    text += &format!(
                        "pass {:<24} {:<9} nodes {} -> {}\n",
                        r.pass,
                        if r.changed { "changed" } else { "no change" },
                        r.nodes_before,
                        r.nodes_after
                    );
                }
            }
            text.push('\n');
            let before = (args.stage != Stage::Built).then_some(built);
            text += &to_text(graph, plan, before, args.layers);
            if args.stage == Stage::Planned {
                text += &kernel_summary(&model);
            }
            text.into_bytes()
        }
        Format::Dot => to_dot(graph, args.layers).into_bytes(),
        Format::Ron => CompiledGraph {
            graph: graph.clone(),
            plan: plan.cloned(),
        }
        .to_ron()?
        .into_bytes(),
        Format::Svg => match plan {
            Some(p) => plan_to_svg(graph, p, args.layers).into_bytes(),
            None => graphviz_svg(&to_dot(graph, args.layers))?,
        },
    };
    match args.output {
        Some(path) => crate::outfile::OutFile::write(&path, &bytes)?,
        None => crate::stdout::write_stdout(&bytes)?,
    }
    Ok(())
}

/// The kernels lowering chose, with how many steps run each.
fn kernel_summary(model: &Model) -> String {
    let program = model.program();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for step in program.steps() {
        *counts.entry(step.kernel.as_str()).or_default() += 1;
    }
    let mut out = format!(
        "\nlowered for the {} backend (cpu: {}), precision {}: {} steps\n",
        program.backend(),
        gemma_graph::backends::cpu_features().join(" "),
        program.precision(),
        program.n_steps()
    );
    for (kernel, n) in counts {
        out += &format!("  {kernel:<36} {n:>5}\n");
    }
    out
}
