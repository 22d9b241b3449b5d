//! `make dist`'s packaging (tools/dist.py), on stand-in binaries (the release builds
//! are `make dist`'s, not the tests'): what each archive holds and with which modes,
//! that SHA256SUMS checks them, that two runs give the same bytes, and that the
//! deployable template takes its code from the zips beside it and passes cfn-lint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cutoff_tests::workspace_root;

const FUNCTIONS: [&str; 4] = ["intake", "revoker", "notifier", "sweeper"];

fn python() -> PathBuf {
    let python = workspace_root().join(".venv/bin/python");
    assert!(python.exists(), "run `make tools` first");
    python
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch directory of its own, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cutoff-dist-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Stand-ins for what `make build` and the CLI builds leave.
fn inputs(dir: &Path) {
    for f in FUNCTIONS {
        fs::create_dir_all(dir.join("lambda").join(f)).unwrap();
        fs::write(
            dir.join("lambda").join(f).join("bootstrap"),
            format!("ELF {f}"),
        )
        .unwrap();
    }
    fs::create_dir_all(dir.join("completions")).unwrap();
    fs::write(
        dir.join("completions/cutoff.bash"),
        "complete -F _cutoff cutoff",
    )
    .unwrap();
    fs::write(dir.join("cutoff-x86_64"), "ELF cli x86_64").unwrap();
    fs::write(dir.join("cutoff-aarch64"), "ELF cli aarch64").unwrap();
}

fn dist(dir: &Path, out: &str, arch: &str) -> Output {
    dist_command(dir, out, arch).output().unwrap()
}

fn dist_command(dir: &Path, out: &str, arch: &str) -> Command {
    let mut command = Command::new(python());
    command
        .arg(workspace_root().join("tools/dist.py"))
        .args([
            "--version",
            "9.8.7",
            "--epoch",
            "1767225600",
            "--lambda-arch",
            arch,
        ])
        .arg("--bundles")
        .arg(dir.join("lambda"))
        .arg("--cli")
        .arg(format!("x86_64={}", dir.join("cutoff-x86_64").display()))
        .arg("--cli")
        .arg(format!("aarch64={}", dir.join("cutoff-aarch64").display()))
        .arg("--completions")
        .arg(dir.join("completions"))
        .arg("--out")
        .arg(dir.join(out));
    command
}

/// `path` inside a .tar.gz, read with Python's tarfile (and a zip inside it with
/// zipfile): its content and mode.
fn member(archive: &Path, script: &str) -> String {
    let code = format!("import io,sys,tarfile,zipfile\nt=tarfile.open(sys.argv[1])\n{script}");
    ok(Command::new(python())
        .args(["-c", &code])
        .arg(archive)
        .output()
        .unwrap())
}

#[test]
fn the_archives_hold_the_bundles_the_template_and_the_cli_with_checked_sums() {
    let dir = scratch("archives");
    inputs(&dir);
    ok(dist(&dir, "a", "arm64"));
    let out = dir.join("a");
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "cutoff-9.8.7-cli-aarch64-linux.tar.gz",
            "cutoff-9.8.7-cli-x86_64-linux.tar.gz",
            "cutoff-9.8.7-lambda-arm64.tar.gz",
        ]
    );
    // sha256sum -c: the sums are of these files.
    ok(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap());

    let lambda = out.join("cutoff-9.8.7-lambda-arm64.tar.gz");
    let listing = member(
        &lambda,
        "for m in t.getmembers(): print(m.name, oct(m.mode), m.uid, m.gid, m.mtime)",
    );
    for name in [
        "cutoff-9.8.7-lambda-arm64/template.yaml",
        "cutoff-9.8.7-lambda-arm64/functions/revoker.zip",
        "cutoff-9.8.7-lambda-arm64/member-role.yaml",
        "cutoff-9.8.7-lambda-arm64/forwarder.yaml",
        "cutoff-9.8.7-lambda-arm64/break-glass.yaml",
        "cutoff-9.8.7-lambda-arm64/identity-center-role.yaml",
        "cutoff-9.8.7-lambda-arm64/LICENSE",
    ] {
        assert!(
            listing.contains(&format!("{name} 0o644 0 0 1767225600")),
            "{name}: {listing}"
        );
    }
    // Each function's zip holds one executable `bootstrap`, the bundle's bytes.
    for f in FUNCTIONS {
        let zip = member(
            &lambda,
            &format!(
                "z=zipfile.ZipFile(io.BytesIO(t.extractfile('cutoff-9.8.7-lambda-arm64/functions/{f}.zip').read()))\n\
                 i=z.infolist()\nprint([x.filename for x in i], oct(i[0].external_attr >> 16), z.read('bootstrap').decode())"
            ),
        );
        assert_eq!(zip.trim(), format!("['bootstrap'] 0o100755 ELF {f}"));
    }
    // The template: code from the zips, no build method, the bundles' architecture.
    let template = member(
        &lambda,
        "print(t.extractfile('cutoff-9.8.7-lambda-arm64/template.yaml').read().decode())",
    );
    for f in FUNCTIONS {
        assert!(
            template.contains(&format!("CodeUri: functions/{f}.zip")),
            "{f}"
        );
    }
    // (Comments may still speak of them; no property does.)
    let properties = template.lines().map(str::trim_start);
    assert!(
        properties
            .clone()
            .all(|l| !l.starts_with("BuildMethod:") && !l.starts_with("CodeUri: ../")),
        "{template}"
    );
    let lint = dir.join("template.yaml");
    fs::write(&lint, &template).unwrap();
    ok(Command::new(workspace_root().join(".venv/bin/cfn-lint"))
        .arg(&lint)
        .output()
        .unwrap());

    // The CLI: an executable `cutoff` and the completions.
    let cli = out.join("cutoff-9.8.7-cli-aarch64-linux.tar.gz");
    let listing = member(&cli, "for m in t.getmembers(): print(m.name, oct(m.mode))");
    assert!(
        listing.contains("cutoff-9.8.7-cli-aarch64-linux/cutoff 0o755"),
        "{listing}"
    );
    assert!(
        listing.contains("cutoff-9.8.7-cli-aarch64-linux/completions/cutoff.bash 0o644"),
        "{listing}"
    );
    let binary = member(
        &cli,
        "print(t.extractfile('cutoff-9.8.7-cli-aarch64-linux/cutoff').read().decode())",
    );
    assert_eq!(binary.trim(), "ELF cli aarch64");

    // Reproducible: another run gives the same bytes.
    ok(dist(&dir, "b", "arm64"));
    assert_eq!(
        fs::read(out.join("SHA256SUMS")).unwrap(),
        fs::read(dir.join("b/SHA256SUMS")).unwrap()
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn x86_64_bundles_make_a_template_that_defaults_to_x86_64_and_a_missing_bundle_stops_it() {
    let dir = scratch("x86");
    inputs(&dir);
    ok(dist(&dir, "out", "x86_64"));
    let lambda = dir.join("out/cutoff-9.8.7-lambda-x86_64.tar.gz");
    let template = member(
        &lambda,
        "print(t.extractfile('cutoff-9.8.7-lambda-x86_64/template.yaml').read().decode())",
    );
    let architecture = template
        .split("\n  Architecture:\n")
        .nth(1)
        .expect("the Architecture parameter");
    assert!(
        architecture
            .starts_with("    Type: String\n    Default: x86_64\n    AllowedValues: [x86_64]\n"),
        "a saved Architecture=arm64 cannot deploy x86_64 zips: {}",
        &architecture[..120]
    );

    // A CLI that needs a newer glibc than a release promises is refused.
    fs::write(dir.join("cutoff-x86_64"), "ELF GLIBC_2.17\0GLIBC_2.34\0").unwrap();
    let newer = dist_command(&dir, "glibc", "x86_64")
        .args(["--max-glibc", "2.26"])
        .output()
        .unwrap();
    assert!(!newer.status.success());
    let stderr = String::from_utf8_lossy(&newer.stderr);
    assert!(
        stderr.contains("needs GLIBC_2.34, newer than the 2.26"),
        "{stderr}"
    );
    fs::write(dir.join("cutoff-x86_64"), "ELF GLIBC_2.17\0GLIBC_2.26\0").unwrap();
    let mut within = dist_command(&dir, "glibc", "x86_64");
    within.args(["--max-glibc", "2.26"]);
    ok(within.output().unwrap());

    fs::remove_file(dir.join("lambda/notifier/bootstrap")).unwrap();
    let out = dist(&dir, "broken", "arm64");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("notifier/bootstrap is missing"), "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}
