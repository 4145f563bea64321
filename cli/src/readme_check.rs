//! Every `gemma-graph` command in the code blocks of the README and of `docs/` parses with the
//! CLI as it is now, so no page can name a flag that does not exist (`cli/tests/readme.rs` runs
//! the blocks marked as runnable for real).

use clap::Parser;

use crate::Cli;

/// Words of a shell command line: '…' and "…" quoting, no expansions.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The command lines of the README's code blocks (fenced, or indented four spaces).
fn code_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut fenced = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || line.starts_with("    ") {
            lines.push(line.trim().to_string());
        }
    }
    lines
}

/// `gemma-graph ...` invocations in a line, without comments, pipes and redirections.
fn invocations(line: &str) -> Vec<Vec<String>> {
    // A comment starts at " #" outside quotes; the README's comments are after two spaces.
    let line = line.split("  #").next().unwrap_or(line);
    let mut found = Vec::new();
    for segment in line.split(['|', ';']).flat_map(|s| s.split("&&")) {
        let segment = segment.split('>').next().unwrap_or(segment);
        let words = shell_words(segment);
        let start = match words.iter().position(|w| w == "gemma-graph") {
            Some(i) => i,
            None if words.starts_with(&["cargo".into(), "run".into()]) => match words.iter().position(|w| w == "--") {
                // `cargo run --release -- run ...`, but not `cargo run --example x -- args`.
                Some(i) if !words.iter().any(|w| w == "--example") => {
                    let mut w = words[i..].to_vec();
                    w[0] = "gemma-graph".into();
                    found.push(w);
                    continue;
                }
                _ => continue,
            },
            None => continue,
        };
        found.push(words[start..].to_vec());
    }
    found
}

/// The README and every page of `docs/`, with their names.
fn pages() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages = vec![("README.md".to_string(), include_str!("../../README.md").to_string())];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let text = std::fs::read_to_string(&p).expect("a docs page");
        pages.push((format!("docs/{}", p.file_name().unwrap().to_string_lossy()), text));
    }
    pages
}

#[test]
fn every_documented_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (page, text) in pages() {
        for line in code_lines(&text) {
            for words in invocations(&line) {
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&words) {
                    failures.push(format!(
                        "{page}: {line}\n  {}",
                        e.to_string().lines().next().unwrap_or("")
                    ));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} commands found in the README and docs/");
    assert!(
        failures.is_empty(),
        "documented commands the CLI rejects:\n{}",
        failures.join("\n")
    );
}

#[test]
fn shell_words_and_invocations() {
    assert_eq!(
        shell_words(r#"run --prompt query "a b" 'c "d"'"#),
        ["run", "--prompt", "query", "a b", "c \"d\""]
    );
    assert_eq!(
        invocations("cat x | gemma-graph run --input - > y  # note"),
        [vec!["gemma-graph", "run", "--input", "-"]]
    );
    assert_eq!(
        invocations("cargo run --release -- run x"),
        [vec!["gemma-graph", "run", "x"]]
    );
    assert!(invocations("cargo run --release --example e -- x").is_empty());
    // A flag that does not exist is caught.
    assert!(Cli::try_parse_from(["gemma-graph", "run", "--no-such-flag"]).is_err());
}
