//! Every `gemma-graph` command in the README's code blocks parses with the CLI as it is now,
//! so the README cannot name a flag that does not exist (`cli/tests/readme.rs` runs the
//! "Common tasks" block for real).

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

#[test]
fn every_readme_command_parses() {
    let readme = include_str!("../../README.md");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in code_lines(readme) {
        for words in invocations(&line) {
            checked += 1;
            if let Err(e) = Cli::try_parse_from(&words) {
                failures.push(format!("{line}\n  {}", e.to_string().lines().next().unwrap_or("")));
            }
        }
    }
    assert!(checked >= 20, "only {checked} commands found in the README");
    assert!(
        failures.is_empty(),
        "README commands the CLI rejects:\n{}",
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
