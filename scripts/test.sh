#!/usr/bin/env bash
# Sets up and runs every test: formatting, the pallet crates' clippy, Rust unit and
# integration tests (these start real nodes from the release binary), a minute of each
# fuzz target, a short run of every pallet benchmark, a compile check of the CUDA path
# (the inference crate), and the polkadot-js tests against a dev node (the chat page's
# among them, in headless Chromium).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
scripts/setup.sh --tests

step() { printf '\n[test] %s\n' "$*"; }
step "rustfmt"
cargo fmt --all -- --check
step "clippy -D warnings on the pallet crates (they deny overflow, indexing and unwrap)"
# Check mode in a target directory of its own (about 2 min cold): the node's clippy run
# would check polkadot-sdk's client crates again (about 25 min cold), so CI leaves it to
# developers (docs/development.md).
SKIP_WASM_BUILD=1 CARGO_TARGET_DIR="$CARGO_TARGET_DIR-clippy" cargo clippy --locked \
	-p dllm-primitives -p dllm-fingerprint -p pallet-models -p pallet-experts -p pallet-poaw \
	-p pallet-reputation --lib --tests -- -D warnings
step "build the workspace (release: dllm-node, dllm-infer)"
# The whole workspace at once, as the tests build it, so both share every artifact.
cargo build --release --locked --workspace --features "$DLLM_FEATURES"
step "Rust tests (release profile, shares the build above)"
cargo test --release --locked --workspace --features "$DLLM_FEATURES" --no-fail-fast
step "fuzz targets, 60 s each after replaying the crashes found before (scripts/fuzz.sh)"
scripts/fuzz.sh 60
step "dllm-fingerprint builds for the runtime's target (wasm32v1-none, no_std)"
cargo build --release --locked -p dllm-fingerprint --no-default-features --target wasm32v1-none
step "pallet benchmarks run (every call, 2 steps, through dllm-node benchmark pallet)"
scripts/benchmark-pallets.sh --check
step "CUDA path compiles: dllm-inference (cargo check, cuda feature, nvcc 13.0 from PyPI); the node's cuda feature enables it"
scripts/cuda-check.sh
step "polkadot-js tests"
(cd scripts/js && npm test)
step "all tests passed"
