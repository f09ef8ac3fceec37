#!/usr/bin/env bash
# Compiles the CUDA path (`--features cuda`) on a machine without a GPU: dllm-inference
# with its tests and binary, then the node that GPU miners run (scripts/cuda-env.sh has
# the toolchain). Checks only: nothing is linked, so no CUDA library is needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
source scripts/cuda-env.sh
nvcc --version | tail -2
# One invocation for both packages: apart, their dependencies' features unify
# differently and candle-kernels compiles its kernels twice (5 min each). The runtime's
# wasm comes from the release build's build-script run, which a check with the same
# features shares (no SKIP_WASM_BUILD here: that would rerun it for both).
cargo check --release --locked -p dllm-inference -p dllm-node \
	--features dllm-inference/cuda,dllm-node/cuda --all-targets "$@"
