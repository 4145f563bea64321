//! The examples in `examples/` run against the real model and say what they should, so they
//! never rot. `cargo test` builds them next to the test binaries.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> Command {
    // `cargo test` (without target filters) builds the examples next to the tests:
    // target/<profile>/deps/examples-<hash> → target/<profile>/examples/<name>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path: PathBuf = profile_dir.join("examples").join(name);
    if path.exists() {
        return Command::new(path);
    }
    // Run alone (`cargo test --test examples`): build them in a target directory of their
    // own (this cargo's directory is locked while its tests run).
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = profile_dir.parent().unwrap().join("examples-build");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--examples", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "building the examples failed");
        target.join("release").join("examples")
    });
    Command::new(dir.join(name))
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn embed_one_prints_a_unit_vector() {
    let out = stdout(example("embed_one").arg("How do I bake bread?"));
    assert!(out.starts_with("768 dims, 8 tokens, norm 1.0000"), "{out}");
}

#[test]
fn embed_batch_uses_the_prompt_and_dim() {
    let out = stdout(&mut example("embed_batch"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.contains("\t256 dims\t")), "{out}");
}

#[test]
fn similarity_ranks_paraphrases_above_unrelated_texts() {
    let score = |a: &str, b: &str| -> f32 {
        let out = stdout(example("similarity").args([a, b]));
        out.split('\t').next().unwrap().parse().unwrap()
    };
    let close = score("A cat sits on the mat", "A kitten rests on the rug");
    let far = score("A cat sits on the mat", "Interest rates rose again this quarter");
    assert!(close > far + 0.2, "{close} vs {far}");
}

#[test]
fn semantic_search_finds_the_right_documents() {
    let out = stdout(&mut example("semantic_search"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "which tower is in France?");
    assert!(lines[1].contains("Eiffel Tower"), "{out}");
    assert_eq!(lines[4], "how do plants make food?");
    assert!(lines[5].contains("Photosynthesis"), "{out}");
}

#[test]
fn custom_head_runs() {
    let out = stdout(example("custom_head").arg("some text"));
    assert!(!out.is_empty());
}
