# Sourced by the other scripts: where cargo builds.
# A target directory outside the checkout survives fresh clones on the same machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dllm-target}"
# The features every script builds the workspace with: the end-to-end tests' misbehaving
# miners need `dllm-node/test-hooks`. One feature set for all of them, so that no script
# rebuilds the node another one built (operators build without it, docs/operators.md).
export DLLM_FEATURES="${DLLM_FEATURES-dllm-node/test-hooks}"
export DLLM_NODE="${DLLM_NODE:-$CARGO_TARGET_DIR/release/dllm-node}"
# The tests' Python virtual environment (the OpenAI Python SDK; `scripts/setup.sh --tests`).
export DLLM_PY_ENV="${DLLM_PY_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dllm-py}"
# frame-benchmarking-cli builds a second wasm runtime that only `benchmark storage`
# uses; dllm-node does not offer that command, so skip the build (minutes on 2 cores).
export SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1
