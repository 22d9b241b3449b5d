# cutoff: build, test and lint.
#
#   make test    format check, clippy (-D warnings) and every test
#   make lint    format check and clippy
#   make build   release build of the workspace
#
# Everything this file needs is installed by it or comes with Rust (cargo, rustfmt,
# clippy); `make setup` says what is missing.

CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: help setup test lint fmt-check clippy unit build clean

help:
	@echo "make test    run format check, clippy and every test"
	@echo "make lint    run format check and clippy"
	@echo "make build   build release binaries (target/release/cutoff)"
	@echo "make setup   check the tools this project needs"

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs (1.94 or newer)"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy"; exit 1; }
	@echo "toolchain: $$($(CARGO) --version)"

fmt-check: setup
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

unit: setup
	$(CARGO) test $(CARGO_FLAGS) --workspace

lint: fmt-check clippy

test: fmt-check clippy unit

build: setup
	$(CARGO) build $(CARGO_FLAGS) --release --workspace
	@ls -l target/release/cutoff

clean:
	$(CARGO) clean
