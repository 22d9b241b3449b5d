//! The layering of docs/architecture.md, held by tests: the domain crate's dependency
//! tree has no SDK, no async runtime, no HTTP stack and no Lambda runtime, and no crate
//! has an import cycle between its modules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use cutoff_tests::workspace_root;

/// The crates of a dependency tree, by name, as `cargo tree` prints them.
fn dependency_names(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running cargo tree: {e}"));
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn forbidden_in(names: &BTreeSet<String>, forbidden: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            forbidden
                .iter()
                .any(|f| name.as_str() == *f || (f.ends_with('-') && name.starts_with(f)))
        })
        .cloned()
        .collect()
}

#[test]
fn the_domain_crate_depends_on_no_sdk_runtime_or_http_stack() {
    let names = dependency_names("cutoff-domain");
    assert!(names.contains("serde"), "the tree was read: {names:?}");
    let found = forbidden_in(
        &names,
        &[
            "aws-",
            "tokio",
            "hyper",
            "lambda_runtime",
            "aws_lambda_events",
            "reqwest",
            "cutoff-aws",
            "cutoff",
        ],
    );
    assert!(found.is_empty(), "the domain crate pulls in {found:?}");
}

#[test]
fn the_aws_crate_knows_nothing_of_lambda_or_the_workflows() {
    let names = dependency_names("cutoff-aws");
    assert!(
        names.contains("aws-sdk-iam"),
        "the tree was read: {names:?}"
    );
    let found = forbidden_in(&names, &["lambda_runtime", "aws_lambda_events", "cutoff"]);
    assert!(found.is_empty(), "the AWS crate pulls in {found:?}");
}

/// The top-level module a file of `src` belongs to (`event/mod.rs` → `event`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its unit tests: tests may reach
/// anywhere in their crate.
fn production_code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of the same crate named by `crate::…` paths, grouped imports included.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `cutoff_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.extend(first_segment(&item));
        } else {
            found.extend(first_segment(rest));
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// Module → modules it uses, for one crate's `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = top_module(src, &file) else {
            continue;
        };
        let entry = graph.entry(module.clone()).or_default();
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        entry.extend(
            referenced_modules(&code)
                .into_iter()
                .filter(|m| *m != module),
        );
    }
    graph
}

/// A cycle of the graph, if it has one (depth-first search, white/grey/black).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node.to_owned(), false);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(cycle) = visit(next, graph, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_owned(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = workspace_root();
    for src in [
        "shared/domain/src",
        "shared/aws/src",
        "shared/app/src",
        "cli/src",
    ] {
        let graph = module_graph(&root.join(src));
        assert!(graph.len() > 3, "{src}: modules were read: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{src}: import cycle {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_the_reader_sees_grouped_imports() {
    let code = "use crate::{outcome::{Outcome, Status}, policy, self};\nfn f() { crate::triage::run(); }\n// crate::comment\nlet s = cutoff_crate::x;";
    assert_eq!(
        referenced_modules(&production_code(code)),
        ["outcome", "policy", "triage"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let cycle = find_cycle(&graph).expect("a → b → c → a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    let mut acyclic = graph.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&acyclic), None);
}

/// The documents a reader follows from the README: every file they name in
/// backticks exists, and every test they name after a file is in that file (the
/// documents cite tests as the proof of a claim; a moved or renamed test must take
/// its citation along).
#[test]
fn the_docs_name_files_that_exist_and_tests_that_are_in_them() {
    let root = workspace_root();
    let mut documents: Vec<PathBuf> = [
        "README.md",
        "infra/README.md",
        "functions/README.md",
        "tests/fixtures/README.md",
        "bench/README.md",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let is_path = |t: &str| {
        t.contains('/')
            && !t.starts_with('.')
            && !t.contains(['<', '*', '{', ' '])
            && [".rs", ".md", ".yaml", ".py", ".mjs", ".json", ".toml"]
                .iter()
                .any(|ext| t.ends_with(ext))
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "./_-".contains(c))
    };
    let is_test_name = |t: &str| {
        t.len() > 20
            && t.starts_with(|c: char| c.is_ascii_lowercase())
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut problems = Vec::new();
    let mut cited = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        let name = document.strip_prefix(root).unwrap().display().to_string();
        for (number, line) in text.lines().enumerate() {
            let mut file: Option<String> = None;
            for token in line.split('`').skip(1).step_by(2) {
                let token = token.trim_end_matches([':', ',']);
                if is_path(token) {
                    if root.join(token).exists() {
                        file = Some(token.to_owned());
                    } else {
                        problems.push(format!("{name}:{}: no file {token}", number + 1));
                        file = None;
                    }
                } else if is_test_name(token)
                    && let Some(file) = file.as_ref().filter(|f| f.ends_with(".rs"))
                {
                    cited += 1;
                    let source = std::fs::read_to_string(root.join(file)).unwrap();
                    if !source.contains(&format!("fn {token}(")) {
                        problems.push(format!("{name}:{}: no test {token} in {file}", number + 1));
                    }
                }
            }
        }
    }
    assert!(cited > 50, "the citations were read: {cited}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
