#!/usr/bin/env python3
"""Checks that an executable is an ELF file for the machine given (aarch64 or x86-64).

`make sam-build` uses it on the bootstraps `sam build` leaves: a bundle of the wrong
architecture deploys fine and fails at its first invocation (exec format error).
"""
import struct
import sys

MACHINES = {0xB7: "aarch64", 0x3E: "x86-64"}


def main() -> int:
    path, expected = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        print(f"{path}: not an ELF executable")
        return 1
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", header[18:20])
    found = MACHINES.get(machine, f"machine {machine:#x}")
    if found != expected:
        print(f"{path}: built for {found}, expected {expected}")
        return 1
    print(f"{path}: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
