#!/usr/bin/env bash
# Measures the weights of the DLLM pallets on this machine and writes each pallet's
# src/weights.rs. Run it after changing a pallet's calls or storage, and commit the
# result with the machine it ran on (the files' headers name it).
#
# The node does not need the runtime-benchmarks feature (that would rebuild most of
# polkadot-sdk a second time): only the wasm runtime is built again with the feature, from
# the project substrate-wasm-builder generated, and given to the node with `--runtime`.
#
# PALLETS="poaw" limits the run to some of the pallets (default: models experts poaw
# reputation).
#
# `--check` (what scripts/test.sh runs): every benchmark once with 2 steps, weights
# written to a temporary directory, the committed files untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
steps="${STEPS:-50}"
repeat="${REPEAT:-20}"
out_dir=""
if [[ "${1:-}" == "--check" ]]; then
	steps=2
	repeat=1
	out_dir="$(mktemp -d)"
	trap 'rm -rf "$out_dir"' EXIT
elif [[ -n "${1:-}" ]]; then
	echo "usage: $0 [--check]" >&2
	exit 2
fi

cargo build --release --locked --workspace --features "$DLLM_FEATURES"

project="$CARGO_TARGET_DIR/release/wbuild/dllm-runtime"
bench="$CARGO_TARGET_DIR/benchmark-runtime"
mkdir -p "$bench/src"
sed 's/^features = \[\]$/features = ["runtime-benchmarks"]/' "$project/Cargo.toml" >"$bench/Cargo.toml"
grep -q 'features = \["runtime-benchmarks"\]' "$bench/Cargo.toml" || {
	echo "cannot enable runtime-benchmarks in $project/Cargo.toml (wasm-builder changed its layout?)" >&2
	exit 1
}
cp "$project/src/lib.rs" "$bench/src/lib.rs"
cp Cargo.lock "$bench/Cargo.lock"
# The flags substrate-wasm-builder gives a wasm32v1-none runtime build.
RUSTFLAGS="-C link-arg=--export-table -C link-arg=--export=__heap_base -C link-arg=--import-memory --cfg substrate_runtime" \
	CARGO_TARGET_DIR="$bench/target" SKIP_WASM_BUILD=1 \
	cargo rustc --target=wasm32v1-none --manifest-path "$bench/Cargo.toml" --profile release
wasm="$bench/target/wasm32v1-none/release/dllm_runtime.wasm"

for pallet in ${PALLETS:-models experts poaw reputation}; do
	output="pallets/$pallet/src/weights.rs"
	[[ -n "$out_dir" ]] && output="$out_dir/$pallet.rs"
	"$DLLM_NODE" benchmark pallet \
		--runtime "$wasm" \
		--genesis-builder runtime \
		--genesis-builder-preset development \
		--pallet "pallet_$pallet" \
		--extrinsic '*' \
		--steps "$steps" \
		--repeat "$repeat" \
		--template scripts/frame-weight-template.hbs \
		--output "$output"
done
echo "benchmarked ${PALLETS:-models experts poaw reputation} (steps $steps, repeat $repeat)"
