//! `gemma-graph convert DIR -o OUT.gguf --type f32|…|q2_k|…|iq4_xs|iq3_s|iq3_m`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gemma_graph::loader::convert::{convert_into, OutType};

use crate::outfile::OutFile;

#[derive(clap::Args)]
pub struct Args {
    /// sentence-transformers checkpoint directory (model.safetensors, tokenizer.model, ...)
    dir: PathBuf,
    /// Output GGUF path.
    #[arg(short, long)]
    output: PathBuf,
    /// Element type of the 2-D weights: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, or
    /// llama.cpp's mixes q2_k, q3_k_s, q3_k_m, q4_k_m, q5_k_m, q6_k, iq4_nl, iq4_xs, iq3_s,
    /// iq3_m (the same bytes `llama-quantize` writes from the f32 file, without an importance
    /// matrix; 1-D tensors stay f32).
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
    let shown = out.shown();
    let report = match convert_into(&args.dir, args.ty, out.file(), std::path::Path::new(&shown)) {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return Err(e).context("conversion failed");
        }
    };
    out.commit()?;
    eprintln!(
        "wrote {} ({} tensors, {} metadata keys, {} bytes) in {:.1} s",
        args.output.display(),
        report.n_tensors,
        report.n_keys,
        report.bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
