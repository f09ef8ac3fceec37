#!/usr/bin/env bash
# Sets up, builds and runs a development network on loopback until Ctrl-C: the dev
# chain's validator (Alice; a block on every transaction and at least every 2 s, each
# final at once) with the OpenAI-compatible API, and a miner node for each genesis
# expert (Bob, Charlie, Dave) serving a tiny model generated on the spot. Options are
# those of scripts/js/bin/local-testnet.mjs: --dir DIR (logs and model), --rpc-port,
# --openai-port (0: no API), --miners. A lone dev node without miners:
# `source scripts/env.sh && "$DLLM_NODE" --dev`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
scripts/setup.sh
# The whole workspace, like the tests build it, so that both share every artifact
# (building one package alone unifies dependency features differently).
cargo build --release --locked --workspace --features "$DLLM_FEATURES"
exec node scripts/js/bin/local-testnet.mjs "$@"
