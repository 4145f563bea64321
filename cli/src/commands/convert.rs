//! `gemma-graph convert DIR -o OUT.gguf --type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k_m|q5_k_m|q6_k`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gemma_graph::loader::convert::{convert, OutType};

#[derive(clap::Args)]
pub struct Args {
    /// sentence-transformers checkpoint directory (model.safetensors, tokenizer.model, ...)
    dir: PathBuf,
    /// Output GGUF path.
    #[arg(short, long)]
    output: PathBuf,
    /// Element type of the 2-D weights: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, or
    /// llama.cpp's mixes q4_k_m, q5_k_m, q6_k (the same bytes `llama-quantize` writes from the
    /// f32 file; 1-D tensors stay f32).
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
    // Checked before a minute of converting: the output must be a file we can create.
    if args.output.is_dir() || args.output.as_os_str().to_string_lossy().ends_with('/') {
        bail!("{} is a directory; give the output file's path", args.output.display());
    }
    if args.output.exists() && !args.force {
        bail!("{} exists (pass --force to overwrite)", args.output.display());
    }
    let parent = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(
            "{}: the directory {} does not exist",
            args.output.display(),
            parent.display()
        );
    }
    let start = Instant::now();
    // Written under a temporary name and renamed, so an interrupted run leaves no file that
    // looks complete.
    let mut tmp = args.output.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let report = match convert(&args.dir, &tmp, args.ty) {
        Ok(r) => r,
        Err(e) => {
            // Leave no partial file behind.
            let _ = std::fs::remove_file(&tmp);
            return Err(e).context("conversion failed");
        }
    };
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.output.display()))?;
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
