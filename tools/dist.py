#!/usr/bin/env python3
"""Release archives for cutoff (`make dist`): the operator CLI per architecture, and the
Lambda bundles with a deployable template, each a .tar.gz, with SHA256SUMS.

Standard library only. The archives are reproducible: entries sorted, owner 0:0,
modes fixed, every time set to --epoch (the last commit's time), gzip without a name or
time, zip entries at --epoch as well. Nothing is uploaded: `sam deploy` does that from
the unpacked lambda archive (README.md, "Releases").

The deployable template is infra/template.yaml with each function's `CodeUri: ../`
(the repository, built by `sam build` through the Makefile) replaced by the function's
zip beside it, the `BuildMethod: makefile` line removed, and the `Architecture`
parameter's default set to the architecture the bundles were built for. Anything else
in it that does not read as expected stops the build: a template the transform did not
understand must not ship.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
import time
import zipfile
from pathlib import Path

FUNCTIONS = ("intake", "revoker", "notifier", "sweeper")
TEMPLATES = ("member-role.yaml", "forwarder.yaml", "break-glass.yaml", "identity-center-role.yaml")
ARCHES = {"arm64": "aarch64", "x86_64": "x86_64"}


def fail(message: str) -> None:
    print(f"make dist: {message}", file=sys.stderr)
    sys.exit(1)


def deployable_template(text: str, arch: str) -> str:
    """infra/template.yaml with the functions' code from functions/<name>.zip."""
    out: list[str] = []
    resource = None
    replaced: set[str] = set()
    build_methods = 0
    default_set = False
    allowed_set = False
    in_architecture = False
    for line in text.splitlines(keepends=True):
        top = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if top:
            resource = top.group(1)
            in_architecture = resource == "Architecture"
        if line.strip() == "BuildMethod: makefile":
            build_methods += 1
            continue
        if line.rstrip("\n") == "      CodeUri: ../":
            name = (resource or "").removesuffix("Function").lower()
            if name not in FUNCTIONS or name in replaced:
                fail(f"CodeUri: ../ under {resource}, which is not one of the functions")
            replaced.add(name)
            out.append(f"      CodeUri: functions/{name}.zip\n")
            continue
        if in_architecture and re.match(r"^    Default: (arm64|x86_64)\s*$", line):
            out.append(f"    Default: {arch}\n")
            default_set = True
            continue
        # The zips hold one architecture: a saved Architecture=<the other> override
        # would deploy functions that cannot start, so the template allows only theirs.
        if in_architecture and re.match(r"^    AllowedValues: \[arm64, x86_64\]\s*$", line):
            out.append(f"    AllowedValues: [{arch}]\n")
            allowed_set = True
            continue
        out.append(line)
    if replaced != set(FUNCTIONS):
        fail(f"the template's functions with CodeUri: ../ are {sorted(replaced)}, expected {sorted(FUNCTIONS)}")
    if build_methods != len(FUNCTIONS):
        fail(f"{build_methods} BuildMethod lines in the template, expected {len(FUNCTIONS)}")
    if not default_set or not allowed_set:
        fail("the template's Architecture parameter has no Default or AllowedValues to set")
    header = (
        "# The cutoff release template: each function's code is functions/<name>.zip beside\n"
        f"# this file, built for {arch}. `sam deploy` uploads the zips (README.md, \"Releases\");\n"
        "# no `sam build`. Comments below that speak of `sam build` and the Makefile are\n"
        "# about the repository's infra/template.yaml, from which this one is made.\n"
    )
    result = header + "".join(out)
    if "CodeUri: ../" in result:
        fail("a CodeUri: ../ is left in the template")
    return result


def newest_glibc(binary: bytes) -> tuple[int, ...] | None:
    """The newest GLIBC_x.y symbol version the binary names (its version needs)."""
    versions = [tuple(int(p) for p in m.split(b".")) for m in re.findall(rb"GLIBC_(\d+(?:\.\d+)+)", binary)]
    return max(versions) if versions else None


def zip_bytes(name: str, data: bytes, epoch: int) -> bytes:
    """A zip with one executable file, as Lambda reads a custom runtime's bundle."""
    buffer = io.BytesIO()
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip times start in 1980
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.external_attr = (0o100755 << 16)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix: the mode above is read
        archive.writestr(info, data)
    return buffer.getvalue()


def tar_gz(path: Path, root: str, files: dict[str, tuple[bytes, int]], epoch: int) -> None:
    """`files`: path inside `root` -> (content, mode)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = sorted({str(Path(root, p).parent) for p in files} | {root})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            archive.addfile(info)
        for name in sorted(files):
            content, mode = files[name]
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode, info.mtime = len(content), mode, epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(content))
    with open(path, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True)
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--lambda-arch", required=True, choices=sorted(ARCHES))
    parser.add_argument("--bundles", type=Path, required=True, help="target/lambda")
    parser.add_argument("--cli", action="append", default=[], metavar="ARCH=PATH")
    parser.add_argument("--completions", type=Path, required=True, help="directory of completion scripts")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--max-glibc",
        type=lambda v: tuple(int(p) for p in v.split(".")),
        default=None,
        help="refuse a CLI binary that needs a newer glibc (e.g. 2.26)",
    )
    args = parser.parse_args()

    repo = Path(__file__).resolve().parent.parent
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("cutoff-*"):
        old.unlink()
    made: list[Path] = []
    license_text = (repo / "LICENSE").read_bytes()

    # The Lambda bundles and the templates.
    files: dict[str, tuple[bytes, int]] = {"LICENSE": (license_text, 0o644)}
    for function in FUNCTIONS:
        bootstrap = args.bundles / function / "bootstrap"
        if not bootstrap.is_file():
            fail(f"{bootstrap} is missing: make build first")
        files[f"functions/{function}.zip"] = (zip_bytes("bootstrap", bootstrap.read_bytes(), args.epoch), 0o644)
    template = (repo / "infra" / "template.yaml").read_text()
    files["template.yaml"] = (deployable_template(template, args.lambda_arch).encode(), 0o644)
    for name in TEMPLATES:
        files[name] = ((repo / "infra" / name).read_bytes(), 0o644)
    files["README.md"] = ((repo / "infra" / "README.md").read_bytes(), 0o644)
    root = f"cutoff-{args.version}-lambda-{args.lambda_arch}"
    path = args.out / f"{root}.tar.gz"
    tar_gz(path, root, files, args.epoch)
    made.append(path)

    # The CLI, per architecture.
    completions = {
        f"completions/{p.name}": (p.read_bytes(), 0o644) for p in sorted(args.completions.iterdir())
    }
    if not completions:
        fail(f"no completion scripts in {args.completions}")
    for item in args.cli:
        arch, _, binary = item.partition("=")
        if arch not in ARCHES.values() or not binary:
            fail(f"--cli {item}: expected aarch64=PATH or x86_64=PATH")
        binary = Path(binary)
        if not binary.is_file():
            fail(f"{binary} is missing")
        newest = newest_glibc(binary.read_bytes())
        if args.max_glibc and newest and newest > args.max_glibc:
            fail(
                f"{binary} needs GLIBC_{'.'.join(map(str, newest))}, newer than the "
                f"{'.'.join(map(str, args.max_glibc))} a release promises"
            )
        root = f"cutoff-{args.version}-cli-{arch}-linux"
        files = {
            "cutoff": (binary.read_bytes(), 0o755),
            "LICENSE": (license_text, 0o644),
            "README.md": ((repo / "README.md").read_bytes(), 0o644),
            **completions,
        }
        path = args.out / f"{root}.tar.gz"
        tar_gz(path, root, files, args.epoch)
        made.append(path)

    sums = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(made)
    )
    (args.out / "SHA256SUMS").write_text(sums)
    for p in sorted(made):
        print(f"{p.stat().st_size:>10} bytes  {p}")
    print(f"{'':>10}        {args.out / 'SHA256SUMS'}")


if __name__ == "__main__":
    main()
