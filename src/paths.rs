//! Where the model lives by default.

use std::path::PathBuf;

/// File name of the converted model inside the cache directory.
pub const DEFAULT_MODEL_FILE: &str = "embeddinggemma-300m-Q8_0.gguf";

/// The cache directory: `$GEMMA_GRAPH_CACHE`, else `~/.cache/gemma-graph`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GEMMA_GRAPH_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("gemma-graph")
}

/// The model every command uses without `--model`: `$GEMMA_GRAPH_MODEL`, else the Q8_0 GGUF
/// that `scripts/fetch-model.sh` writes into the cache directory.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GEMMA_GRAPH_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir().join(DEFAULT_MODEL_FILE)
}

/// The sentence-transformers checkpoint the fetch script unpacks.
pub fn default_checkpoint_dir() -> PathBuf {
    cache_dir().join("embeddinggemma-300m")
}
