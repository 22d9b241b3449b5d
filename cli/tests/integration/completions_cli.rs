//! `cutoff completions <shell>`: a script each shell takes, built from the parser's
//! own definition (so it knows every subcommand and flag), and one that completes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn cutoff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutoff"))
        .args(args)
        .output()
        .unwrap()
}

const SUBCOMMANDS: [&str; 11] = [
    "triage",
    "revoke",
    "status",
    "release",
    "sweep",
    "history",
    "approve",
    "refuse",
    "pending",
    "doctor",
    "completions",
];

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = cutoff(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        // Flags come from the same definition as the parser's.
        assert!(script.contains("securityhub-v2"), "{shell}: no triage flag");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_exit_two() {
    let out = cutoff(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

/// Runs bash's completion for the words typed so far, with the script sourced.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = String::from_utf8(cutoff(&["completions", "bash"]).stdout).unwrap();
    let dir = std::env::temp_dir().join(format!("cutoff-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cutoff.bash");
    std::fs::write(&path, script).unwrap();
    let typed = words.join(" ");
    let program = format!(
        r#"source {path}
COMP_WORDS=({typed})
COMP_CWORD={cword}
COMP_LINE="{typed}"
COMP_POINT=${{#COMP_LINE}}
_cutoff cutoff "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        path = path.display(),
        cword = words.len() - 1,
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    assert_eq!(bash_completes(&["cutoff", "tri"]), ["triage"]);
    let mut re = bash_completes(&["cutoff", "re"]);
    re.sort();
    assert_eq!(re, ["refuse", "release", "revoke"]);
    let flags = bash_completes(&["cutoff", "triage", "--securityhub-v"]);
    assert!(
        flags.contains(&"--securityhub-v2".to_owned())
            && flags.contains(&"--securityhub-v2-product".to_owned()),
        "{flags:?}"
    );
}

#[test]
fn a_reader_that_stops_early_is_no_error() {
    // A pipe whose reading end is closed before cutoff writes, as `| head` that has
    // read enough: every write fails with a broken pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_cutoff"))
        .args(["completions", "zsh"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}
