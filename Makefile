# cutoff: build, test, lint, benchmark and deploy.
#
#   make demo    a real-shaped GuardDuty finding through the real functions on moto:
#                the deny applied, read back, and the owner's notification
#   make test    format check, clippy (-D warnings), cfn-lint and every test (the crates'
#                unit tests, then one integration binary per package against moto)
#   make lint    format check and clippy, cfn-lint, `sam validate --lint` and checkov
#   make build   the Lambda bundles (target/lambda/<function>/bootstrap, arm64 for
#                provided.al2023, x86_64 when the arm64 target cannot be installed)
#                and the CLI
#   make permissions  the least-privilege and trust tests of the templates alone
#   make tools   install the test tools: moto (local AWS stand-in) into .venv/ and the
#                IAM policy evaluator into node_modules/ (stamped: a no-op when done)
#   make fuzz    fuzz the event, manual-request, policy and principal parsers with
#                cargo-fuzz (pinned, installed into .tools/), FUZZ_SECONDS each (60)
#   make bench   measure cutoff beside a Python/boto3 baseline (cold start, latency, calls,
#                storm, 10,000-role sweep, memory, bundle sizes) and check the budgets;
#                writes bench/results.json and bench/results.md (not part of make test)
#   make dist    release archives in dist/: the CLI (x86_64, and arm64 Linux when its
#                Rust target is installed), the Lambda bundles with a deployable
#                template, and SHA256SUMS; nothing is uploaded (README.md, "Releases")
#   make deploy  build, `sam build`, then a guided `sam deploy` (needs AWS credentials);
#                `make package` uploads the bundles and writes infra/packaged.yaml
#
# Everything this file needs is installed by it or comes with Rust (cargo, rustfmt,
# clippy), python3 (with its venv module) or Node.js (node, npm); `make setup` and
# `make tools-check` say what is missing.

CARGO ?= cargo
CARGO_FLAGS ?= --locked
PYTHON ?= python3
NODE ?= node
NPM ?= npm

# Project-local tool installs. The stamps are written last, so an interrupted
# install is redone on the next run; they are older than their inputs when the
# pins change, which reinstalls.
VENV := .venv
VENV_STAMP := $(VENV)/.cutoff-tools-stamp
PY_REQUIREMENTS := tools/requirements.txt
NODE_STAMP := node_modules/.cutoff-tools-stamp
BUILD_REQUIREMENTS := tools/build-requirements.txt
BUILD_STAMP := $(VENV)/.cutoff-build-tools-stamp
FUNCTIONS := intake revoker notifier sweeper
LINT_VENV := .venv-lint
LINT_REQUIREMENTS := tools/lint-requirements.txt
LINT_STAMP := $(LINT_VENV)/.cutoff-lint-tools-stamp
TEMPLATES := infra/template.yaml infra/member-role.yaml infra/identity-center-role.yaml infra/break-glass.yaml infra/forwarder.yaml

.PHONY: help setup test lint fmt-check clippy unit build build-tools clean tools tools-check demo dist bench-standin-check \
	cfn-lint lint-tools lint-templates deploy package fuzz fuzz-tools bench bench-tools \
	bundles permissions sam-build build-IntakeFunction build-RevokerFunction build-NotifierFunction build-SweeperFunction

help:
	@echo "make demo    run a GuardDuty finding through the real functions on a local AWS stand-in"
	@echo "make test    run format check, clippy and every test"
	@echo "make lint    format check, clippy, cfn-lint, sam validate --lint and checkov on the templates"
	@echo "make build   build the arm64 Lambda bundles (target/lambda/*/bootstrap) and the CLI"
	@echo "make setup   check the tools this project needs"
	@echo "make tools   install moto (.venv/) and the policy evaluator (node_modules/)"
	@echo "make fuzz    fuzz the event, request, policy and principal parsers (FUZZ_SECONDS=60 each)"
	@echo "make bench   benchmark cutoff beside a Python/boto3 baseline and check the budgets (bench/results.md)"
	@echo "make dist    release archives of the CLI and the Lambda bundles with SHA256SUMS (dist/)"
	@echo "make deploy  build, then a guided sam deploy of infra/template.yaml (needs AWS credentials)"

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs (1.94 or newer)"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy"; exit 1; }
	@echo "toolchain: $$($(CARGO) --version)"

tools-check:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.9 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || { echo "$(PYTHON) is $$($(PYTHON) --version 2>&1); moto needs Python 3.9 or newer"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "$(PYTHON) cannot create virtualenvs: install its venv module (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }
	@command -v $(NODE) >/dev/null || { echo "$(NODE) not found: install Node.js 20 or newer (https://nodejs.org, or apt-get install nodejs npm)"; exit 1; }
	@command -v $(NPM) >/dev/null || { echo "$(NPM) not found: install npm (it ships with Node.js; Debian/Ubuntu: apt-get install npm)"; exit 1; }

# Test tools: moto's server (the local AWS stand-in) in a project-local virtualenv,
# and @cloud-copilot/iam-simulate (the independent policy evaluator behind
# tests/evaluator/evaluate.mjs) in a project-local node_modules/. Both pinned.
tools: $(VENV_STAMP) $(NODE_STAMP)

$(VENV_STAMP): $(PY_REQUIREMENTS)
	@$(MAKE) --no-print-directory tools-check
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-input --disable-pip-version-check -r $(PY_REQUIREMENTS)
	$(VENV)/bin/python -c 'import moto.server' || { echo "moto installed but does not import"; exit 1; }
	@touch $@

# Build tools (cargo-lambda, zig) in the same virtualenv, stamped separately so that
# `make test` does not need them.
build-tools: $(BUILD_STAMP)

$(BUILD_STAMP): $(BUILD_REQUIREMENTS) $(VENV_STAMP)
	$(VENV)/bin/python -m pip install --quiet --no-input --disable-pip-version-check -r $(BUILD_REQUIREMENTS)
	@touch $@

# `npm ci` installs exactly the committed package-lock.json (and wipes node_modules/
# first); without a lock file, `npm install` resolves package.json and writes one.
$(NODE_STAMP): package.json $(wildcard package-lock.json)
	@$(MAKE) --no-print-directory tools-check
	@if [ -f package-lock.json ]; then \
		echo "$(NPM) ci"; $(NPM) ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "$(NPM) install"; $(NPM) install --no-audit --no-fund --loglevel=error; \
	fi
	$(NODE) -e 'import("@cloud-copilot/iam-simulate").then(() => {}, (e) => { console.error(e); process.exit(1); })' || { echo "iam-simulate installed but does not load"; exit 1; }
	@touch $@

# Fuzzing: cargo-fuzz (libFuzzer) on the stable toolchain. cargo-fuzz passes nightly-only
# flags (-Z...), which RUSTC_BOOTSTRAP=1 lets stable accept; the code is all safe Rust
# (unsafe_code is forbidden), so no sanitizer is needed (FUZZ_SANITIZER=address works
# too, slower). fuzz/ is its own workspace with its own lock file. Each target starts
# from the fixtures and tests/fuzz-corpus/<target>/ and grows fuzz/corpus/<target>/
# (ignored by git); a crash stops the run with its input in fuzz/artifacts/<target>/.
# Minimise it (cargo fuzz tmin) into tests/fuzz-corpus/<target>/, where `make test`
# (tests/integration/hostile.rs) replays every file through the same checks.
FUZZ_TOOLS := .tools
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_STAMP := $(FUZZ_TOOLS)/.cutoff-cargo-fuzz-$(CARGO_FUZZ_VERSION)-stamp
FUZZ_TARGETS := event_triage policy_document manual_request principal_parsers
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= none
FUZZ_ENV := PATH="$(CURDIR)/$(FUZZ_TOOLS)/bin:$$PATH" RUSTC_BOOTSTRAP=1

fuzz-tools: $(FUZZ_STAMP)

$(FUZZ_STAMP):
	$(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(FUZZ_TOOLS)
	@touch $@

fuzz: setup $(FUZZ_STAMP)
	@for t in $(FUZZ_TARGETS); do \
		seeds=tests/fuzz-corpus/$$t; \
		case $$t in event_triage|manual_request) seeds="$$seeds tests/fixtures/events";; esac; \
		mkdir -p fuzz/corpus/$$t || exit 1; \
		echo "fuzz $$t for $(FUZZ_SECONDS) s (sanitizer $(FUZZ_SANITIZER))"; \
		$(FUZZ_ENV) $(CARGO) fuzz run --fuzz-dir fuzz --sanitizer $(FUZZ_SANITIZER) $$t \
			fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) \
			-dict=fuzz/dict/$$t.dict -print_final_stats=1 || { \
			echo "make fuzz: $$t broke an invariant; the input is in fuzz/artifacts/$$t/."; \
			echo "  minimise it: RUSTC_BOOTSTRAP=1 $(FUZZ_TOOLS)/bin/cargo-fuzz fuzz tmin --fuzz-dir fuzz --sanitizer $(FUZZ_SANITIZER) $$t <artifact>"; \
			echo "  and keep it in tests/fuzz-corpus/$$t/ (make test replays it)"; \
			exit 1; }; \
	done

fmt-check: setup
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# Everything is built first, in one build whose features are the test build's: the
# function binaries the integration tests run (function_binary in
# tests/support/runtime.rs, told by CUTOFF_FUNCTIONS_BUILD to expect this build) come
# out of it too, so the SDK is compiled once, not a second time without its
# test-only features. The tests are two binaries, tests/integration/ and
# cli/tests/integration/, each one process with one moto server.
unit: setup tools
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets
	CUTOFF_FUNCTIONS_BUILD=workspace $(CARGO) test $(CARGO_FLAGS) --workspace

# cfn-lint comes with moto (pinned in tools/requirements.txt), so every `make test`
# lints the templates too: zero errors and zero warnings.
cfn-lint: tools
	$(VENV)/bin/cfn-lint $(TEMPLATES)

# The heavier template checks, in their own virtualenv (checkov pins many libraries):
# `sam validate --lint` (SAM's own rules; fake credentials, nothing is called) and
# checkov (security scanner; every skip is justified in the resource's Metadata).
# cfn-lint does not check IAM action names under the SAM transform (W3037); the
# least-privilege test (tests/integration/infra.rs) checks each granted action against
# the code.
lint-tools: $(LINT_STAMP)

$(LINT_STAMP): $(LINT_REQUIREMENTS)
	@$(MAKE) --no-print-directory tools-check
	rm -rf $(LINT_VENV)
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --no-input --disable-pip-version-check -r $(LINT_REQUIREMENTS)
	@touch $@

lint-templates: cfn-lint lint-tools
	SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=lint AWS_SECRET_ACCESS_KEY=lint AWS_REGION=us-east-1 \
		$(LINT_VENV)/bin/sam validate --lint --template infra/template.yaml --region us-east-1
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation $(foreach t,$(TEMPLATES),-f $(t))

# The templates held to AWS's definitions (tests/integration/infra.rs, also part of
# make test): every action, NotAction and condition key exists in the service
# authorization reference (iam-data, pinned), and each function's role grants exactly
# the actions that authorize the SDK operations its code calls. The infra:: module of
# the integration test binary.
permissions: setup tools
	$(CARGO) test $(CARGO_FLAGS) -p cutoff-tests --test integration -- infra::

# `sam build` as a user runs it, without this Makefile's other targets: four release
# builds, so lint, not test. It must leave four bootstraps of the architecture
# target/lambda/ARCH records; an x86_64 fallback is said plainly.
sam-build: lint-tools bundles
	rm -rf infra/.aws-sam
	$(SAM_BUILD)
	@arch=$$(cat target/lambda/ARCH); \
	case $$arch in arm64) machine=aarch64;; *) machine=x86-64;; esac; \
	for f in IntakeFunction RevokerFunction NotifierFunction SweeperFunction; do \
		b=infra/.aws-sam/build/$$f/bootstrap; \
		test -x $$b || { echo "sam build: no executable $$b"; exit 1; }; \
		$(PYTHON) tools/elf_machine.py $$b $$machine || exit 1; \
	done; \
	echo "sam build: four $$arch bootstraps under infra/.aws-sam/build/"; \
	if [ $$arch != arm64 ]; then echo "sam build: FELL BACK to x86_64 (the arm64 Rust target is not installed): deploy with Architecture=x86_64"; fi

lint: fmt-check clippy lint-templates permissions sam-build

test: fmt-check clippy cfn-lint bench-standin-check unit

# Lambda bundles: target/lambda/<function>/bootstrap, for provided.al2023 on arm64
# (cross-compiled with cargo-lambda and zig), plus the operator CLI. When the arm64
# Rust target cannot be installed (no network to rustup), say so and build x86_64
# bundles instead: deploy those with Architecture=x86_64. target/lambda/ARCH records
# which was built.
build: bundles
	$(CARGO) build $(CARGO_FLAGS) --release -p cutoff-cli
	@for f in $(FUNCTIONS); do \
		printf '%-10s %8d bytes  target/lambda/%s/bootstrap\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap) $$f; \
	done | tee target/lambda/sizes.txt
	@ls -l target/release/cutoff

bundles: setup build-tools
	@if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
	    || rustup target add aarch64-unknown-linux-gnu; then \
		arch=arm64; \
	else \
		echo "make build: could not install the Rust target aarch64-unknown-linux-gnu (rustup target add failed: is the network to rustup reachable?)."; \
		echo "make build: building x86_64 bundles instead; deploy them with Architecture=x86_64 (the template's default is arm64)."; \
		arch=x86_64; \
	fi; \
	case $$arch in arm64) flag=--arm64;; *) flag=--x86-64;; esac; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release $$flag $(foreach f,$(FUNCTIONS),-p $(f)) \
		&& echo $$arch > target/lambda/ARCH

# `sam build` runs these (infra/template.yaml: BuildMethod makefile; built in source,
# infra/samconfig.toml), with ARTIFACTS_DIR set to the function's artifact directory.
# Each reuses the cargo-lambda build above (the second to fourth find it done). SAM does
# not tell make the template's Architecture, so ARCHITECTURE (default arm64) says what
# the deploy will use: bundles of another architecture are refused, since they would
# deploy and then fail every invocation. After an x86_64 fallback, build with
# `ARCHITECTURE=x86_64 sam build` and deploy with Architecture=x86_64.
ARCHITECTURE ?= arm64
# Where the bundles are (a test points it at a directory of its own).
LAMBDA_DIR ?= target/lambda
# `sam build` from infra/, told the architecture `make bundles` built (lint, deploy,
# package).
SAM_BUILD = cd infra && ARCHITECTURE=$$(cat ../target/lambda/ARCH) SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(LINT_VENV)/bin:$$PATH" sam build --config-file samconfig.toml
SAM_TARGETS := build-IntakeFunction build-RevokerFunction build-NotifierFunction build-SweeperFunction
build-IntakeFunction: SAM_BINARY := intake
build-RevokerFunction: SAM_BINARY := revoker
build-NotifierFunction: SAM_BINARY := notifier
build-SweeperFunction: SAM_BINARY := sweeper
$(SAM_TARGETS): bundles
	@test -n "$(ARTIFACTS_DIR)" || { echo "$@: run by sam build, which sets ARTIFACTS_DIR (make build builds the bundles alone)"; exit 1; }
	@built=$$(cat $(LAMBDA_DIR)/ARCH); test "$$built" = "$(ARCHITECTURE)" || { \
		echo "$@: the bundles are $$built, the deploy expects $(ARCHITECTURE): run ARCHITECTURE=$$built sam build, and deploy with Architecture=$$built"; exit 1; }
	cp $(LAMBDA_DIR)/$(SAM_BINARY)/bootstrap "$(ARTIFACTS_DIR)/bootstrap"
	@echo "$@: $$(cat $(LAMBDA_DIR)/ARCH) bootstrap for $(SAM_BINARY)"

clean:
	$(CARGO) clean
	rm -rf $(DIST)

# Release archives (tools/dist.py; deterministic: sorted entries, fixed owners and
# modes, times from the last commit, so the same binaries give the same bytes; the
# binaries themselves are the same only from the same toolchain and paths). The CLI is
# built with cargo-lambda's zig linker, like the bundles, so that it needs an older
# glibc than this machine's (at most DIST_MAX_GLIBC, checked); the arm64 CLI when its Rust target is installed (said plainly when
# not). The Lambda archive's template takes its code from the zips beside it, so
# `sam deploy` uploads them (README.md, "Releases"); it is linted here.
DIST := dist
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# cargo-lambda moves what it builds to target/lambda/<binary>/bootstrap: each CLI is
# moved on from there, so that target/lambda/ holds only the function bundles.
CLI_X86 := target/dist-cli/cutoff-x86_64
CLI_ARM := target/dist-cli/cutoff-aarch64
# The newest glibc a release CLI may need: Amazon Linux 2023's (also Ubuntu 22.04,
# Debian 12, RHEL 9). cargo-lambda's zig links against an older one (2.30 measured).
DIST_MAX_GLIBC ?= 2.34

dist: bundles tools
	rm -rf $(DIST) && mkdir -p $(DIST)/.completions
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build $(CARGO_FLAGS) --release --x86-64 -p cutoff-cli
	mkdir -p $(dir $(CLI_X86)) && mv target/lambda/cutoff/bootstrap $(CLI_X86) && rmdir target/lambda/cutoff
	@cli="--cli x86_64=$(CLI_X86)"; \
	if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build $(CARGO_FLAGS) --release --arm64 -p cutoff-cli || exit 1; \
		mv target/lambda/cutoff/bootstrap $(CLI_ARM) || exit 1; \
		cli="$$cli --cli aarch64=$(CLI_ARM)"; \
		rmdir target/lambda/cutoff; \
	else \
		echo "make dist: the Rust target aarch64-unknown-linux-gnu is not installed (rustup target add aarch64-unknown-linux-gnu): no arm64 CLI archive"; \
	fi; \
	$(CLI_X86) completions bash > $(DIST)/.completions/cutoff.bash && \
	$(CLI_X86) completions zsh > $(DIST)/.completions/_cutoff && \
	$(CLI_X86) completions fish > $(DIST)/.completions/cutoff.fish && \
	$(VENV)/bin/python tools/dist.py --version $(VERSION) \
		--epoch $$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
		--lambda-arch $$(cat target/lambda/ARCH) --bundles target/lambda $$cli \
		--completions $(DIST)/.completions --out $(DIST) --max-glibc $(DIST_MAX_GLIBC)
	rm -rf $(DIST)/.completions
	cd $(DIST) && sha256sum -c SHA256SUMS
	@rm -rf $(DIST)/.lint && mkdir -p $(DIST)/.lint && \
	tar -xzf $(DIST)/cutoff-$(VERSION)-lambda-$$(cat target/lambda/ARCH).tar.gz -C $(DIST)/.lint && \
	$(VENV)/bin/cfn-lint $(DIST)/.lint/*/template.yaml && rm -rf $(DIST)/.lint && \
	echo "make dist: the template in the lambda archive passes cfn-lint"

# The demo: moto and the three function binaries on this machine, one finding through
# intake -> queue -> revoker -> bus -> notifier. It stops everything it started. The
# functions are built as for the tests (all four in one cargo build, the command
# function_binary runs), so the demo finds them built.
demo: setup tools
	$(CARGO) build $(CARGO_FLAGS) --quiet $(foreach f,$(FUNCTIONS),-p $(f))
	$(CARGO) build $(CARGO_FLAGS) --quiet -p cutoff-tests --bin cutoff-demo
	./target/debug/cutoff-demo

# Deploy to AWS (needs credentials): `sam build` (the bundles of `make build`), then a
# guided `sam deploy` of the built template with infra/samconfig.toml. Deploy
# infra/member-role.yaml as a StackSet first (infra/README.md).
deploy: lint-tools bundles
	$(SAM_BUILD)
	@echo "make deploy: the bundles are $$(cat target/lambda/ARCH): answer Architecture=$$(cat target/lambda/ARCH)"
	cd infra && SAM_CLI_TELEMETRY=0 ../$(LINT_VENV)/bin/sam deploy --guided --config-file samconfig.toml

# Upload the bundles and write a packaged template (infra/packaged.yaml) for a
# pipeline or a StackSet-style rollout.
package: lint-tools bundles
	$(SAM_BUILD)
	cd infra && SAM_CLI_TELEMETRY=0 ../$(LINT_VENV)/bin/sam package --config-file samconfig.toml --template-file .aws-sam/build/template.yaml --output-template-file packaged.yaml --resolve-s3

# Benchmarks (bench/): cutoff's functions beside the Python/boto3 baseline in
# bench/baseline/, both through the same local Lambda Runtime API against moto.
# The functions are measured as release binaries for this host (the workspace's release
# profile, the same command for the hello-world floor); bundle sizes come from
# `make build` (run once here when target/lambda/sizes.txt is missing). The harness
# (bench/harness, a debug build: it is the instrument, not what is measured) prints the
# table with PASS/FAIL per budget, writes bench/results.json and bench/results.md, and
# exits non-zero when a budget fails. BENCH_ARGS passes options (--runs N, --no-fail, …:
# see bench/README.md). The baseline's virtualenv is pinned and stamped like
# the others.
BENCH_VENV := bench/baseline/.venv
BENCH_REQUIREMENTS := bench/baseline/requirements.txt
BENCH_STAMP := $(BENCH_VENV)/.cutoff-bench-tools-stamp
BENCH_ARGS ?=

bench-tools: $(BENCH_STAMP)

$(BENCH_STAMP): $(BENCH_REQUIREMENTS)
	@$(MAKE) --no-print-directory tools-check
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-input --disable-pip-version-check -r $(BENCH_REQUIREMENTS)
	$(BENCH_VENV)/bin/python -c 'import awslambdaric, boto3' || { echo "the baseline's packages installed but do not import"; exit 1; }
	@touch $@

# The bench's moto is moto with two costs that grow with the data made constant
# (bench/moto/sitecustomize.py); this checks that moto still answers as before.
bench-standin-check: tools
	PYTHONPATH=bench/moto $(VENV)/bin/python bench/moto/check_patches.py

bench: setup tools $(BENCH_STAMP) bench-standin-check
	@test -f target/lambda/sizes.txt || { \
		echo "make bench: target/lambda/sizes.txt is missing; running make build for the bundle sizes"; \
		$(MAKE) --no-print-directory build; }
	$(CARGO) build $(CARGO_FLAGS) --release $(foreach f,$(FUNCTIONS),-p $(f)) -p cutoff-bench-hello
	$(CARGO) build $(CARGO_FLAGS) -p cutoff-bench
	./target/debug/cutoff-bench $(BENCH_ARGS)
