#!/usr/bin/env bash
# Sets up, builds and starts a development node: one validator (Alice), dev accounts
# funded, a block on every transaction and at least every 2 s, each finalized at once.
# The chain lives in a temporary directory unless a --base-path is given. Extra arguments
# go to the node, e.g. `scripts/dev.sh --base-path ~/dllm-dev`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
scripts/setup.sh
# The whole workspace, like the tests build it, so that both share every artifact
# (building one package alone unifies dependency features differently).
cargo build --release --locked --workspace
echo "[dev] polkadot-js apps: https://polkadot.js.org/apps/?rpc=ws%3A%2F%2F127.0.0.1%3A9944"
exec "$DLLM_NODE" --dev "$@"
