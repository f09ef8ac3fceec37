#!/usr/bin/env bash
# Compiles the CUDA path (`--features cuda`) on a machine without a GPU: dllm-inference
# with its tests and binaries (scripts/cuda-env.sh has the toolchain), and checks that
# the node's `cuda` feature turns on dllm-inference's. Checks only: nothing is linked, so
# no CUDA library is needed.
#
# The node is not compiled here: it has no CUDA code of its own (every device-specific
# line is in dllm-inference), and checking its Substrate crates again cost CI about
# 4 minutes of its 90 (dropped in session 21, to make room for the fuzz targets).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
source scripts/cuda-env.sh
nvcc --version | tail -2
cargo check --release --locked -p dllm-inference --features cuda --all-targets "$@"
# The node's feature forwards to dllm-inference's (what a GPU miner's build relies on).
if ! cargo tree --locked -p dllm-node --features dllm-node/cuda -e features -i dllm-inference \
	--prefix none | grep -qx 'dllm-inference feature "cuda"'; then
	echo "dllm-node's cuda feature does not enable dllm-inference/cuda (node/Cargo.toml)" >&2
	exit 1
fi
echo "dllm-node --features cuda enables dllm-inference/cuda"
