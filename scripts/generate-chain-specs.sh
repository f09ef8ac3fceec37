#!/usr/bin/env bash
# Regenerates chain-spec/dev.json and chain-spec/local.json from the node. Run it after
# any change to the runtime or its genesis presets; a test fails while they differ.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
# The whole workspace, like the tests build it, so that both share every artifact
# (building one package alone unifies dependency features differently).
cargo build --release --locked --workspace --features "$DLLM_FEATURES"
for chain in dev local; do
	"$DLLM_NODE" build-spec --chain "$chain" --disable-default-bootnode >"chain-spec/$chain.json" 2>/dev/null
	echo "chain-spec/$chain.json"
done
