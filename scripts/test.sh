#!/usr/bin/env bash
# Sets up and runs every test: formatting, Rust unit and integration tests (these start
# real nodes from the release binary), a short run of every pallet benchmark, a compile
# check of the CUDA path (inference crate and node), and the polkadot-js tests against a dev node
# (the chat page's among them, in headless Chromium).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
scripts/setup.sh --tests

step() { printf '\n[test] %s\n' "$*"; }
step "rustfmt"
cargo fmt --all -- --check
step "build the workspace (release: dllm-node, dllm-infer)"
# The whole workspace at once, as the tests build it, so both share every artifact.
cargo build --release --locked --workspace --features "$DLLM_FEATURES"
step "Rust tests (release profile, shares the build above)"
cargo test --release --locked --workspace --features "$DLLM_FEATURES" --no-fail-fast
step "dllm-fingerprint builds for the runtime's target (wasm32v1-none, no_std)"
cargo build --release --locked -p dllm-fingerprint --no-default-features --target wasm32v1-none
step "pallet benchmarks run (every call, 2 steps, through dllm-node benchmark pallet)"
scripts/benchmark-pallets.sh --check
step "CUDA path compiles: dllm-inference and dllm-node (cargo check, cuda features, nvcc 13.0 from PyPI)"
scripts/cuda-check.sh
step "polkadot-js tests"
(cd scripts/js && npm test)
step "all tests passed"
