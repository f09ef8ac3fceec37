#!/usr/bin/env bash
# Runs the reputation simulation (pallets/reputation/sim) and writes
# docs/reputation-sim.csv and docs/reputation-sim.png; arguments go to the simulation
# (`--rounds`, `--seeds`, `--out`; `--help`).
#
# It builds the whole workspace, as every script here does, so the build shares its
# artifacts with the node and the tests (building one package alone unifies features
# differently and recompiles hundreds of crates).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
cargo build --release --locked --workspace --features "$DLLM_FEATURES"
exec "$CARGO_TARGET_DIR/release/reputation-sim" "$@"
