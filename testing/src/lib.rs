//! What the workspace's tests and benches share: the golden data and the real model
//! ([`golden`]), files of every weight type checked against llama.cpp's manifests
//! ([`formats`]), a tiny model with random weights ([`tiny`]) and the benchmark texts
//! ([`bench`]). A dev-dependency of the crates that test with them.

use std::path::PathBuf;

pub mod bench;
pub mod formats;
pub mod golden;
pub mod tiny;

pub use golden::*;

/// `../shared` beside the checkout (what CI and every session mount read-only).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}
