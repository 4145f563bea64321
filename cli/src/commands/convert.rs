//! `gemma-graph convert DIR -o OUT.gguf --type f32|…|q6_k|iq4_nl|iq4_xs`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gemma_graph::loader::convert::{build_gguf, OutType};

use crate::outfile::OutFile;

#[derive(clap::Args)]
pub struct Args {
    /// sentence-transformers checkpoint directory (model.safetensors, tokenizer.model, ...)
    dir: PathBuf,
    /// Output GGUF path.
    #[arg(short, long)]
    output: PathBuf,
    /// Element type of the 2-D weights: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, or
    /// llama.cpp's mixes q4_k_m, q5_k_m, q6_k, iq4_nl, iq4_xs (the same bytes `llama-quantize`
    /// writes from the f32 file, without an importance matrix; 1-D tensors stay f32).
    #[arg(long = "type", default_value = "q8_0")]
    ty: OutType,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    // Opened before a minute of converting: a bad output path fails now.
    let out = OutFile::create(&args.output, args.force)?;
    let start = Instant::now();
    let writer = match build_gguf(&args.dir, args.ty) {
        Ok(w) => w,
        Err(e) => {
            out.abandon();
            return Err(e).context("conversion failed");
        }
    };
    let shown = out.shown();
    if let Err(e) = writer.write_to(std::io::BufWriter::with_capacity(1 << 20, out.file())) {
        out.abandon();
        return Err(e).with_context(|| format!("writing {shown}"));
    }
    let bytes = out.file().metadata().map(|m| m.len()).unwrap_or(0);
    out.commit()?;
    let report = (writer.n_tensors(), writer.n_keys());
    eprintln!(
        "wrote {} ({} tensors, {} metadata keys, {} bytes) in {:.1} s",
        args.output.display(),
        report.0,
        report.1,
        bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
