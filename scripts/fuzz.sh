#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer, AddressSanitizer), each for a given
# time, after replaying every input in fuzz/regressions/<target>/ (crashes found before).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s each, every target
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) and the corpus it
# grew before (in the fuzz target directory, never in the checkout); as many run at once
# as there are cores (DLLM_FUZZ_JOBS). A crash fails the script, with the input's path:
# minimize it (`cargo fuzz tmin`), add it to fuzz/regressions/<target>/ and a test of the
# fix to the crate it concerns. The table at the end gives each target's executions, for
# docs/security.md.
#
# The toolchain is the pinned stable one; RUSTC_BOOTSTRAP lets it take the sanitizer
# flags cargo-fuzz passes (no nightly is installed on a fresh machine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(activation_forward config_json safetensors_file weight_index tokenizer_json)
fi
if ! command -v cargo-fuzz > /dev/null; then
	echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked --version 0.13.2" >&2
	exit 1
fi

target_dir="${DLLM_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-fuzz}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
work="$target_dir/work"
export RUSTC_BOOTSTRAP=1
# The targets write their small models under TMPDIR: one of this script's, emptied here.
export TMPDIR="$work/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
fuzz=(cargo fuzz)
build_flags=(--release --target-dir "$target_dir")

echo "[fuzz] building the targets (target dir $target_dir)"
"${fuzz[@]}" build "${build_flags[@]}"

# Regressions first, one target at a time (a crash stops here, before any fuzzing).
for target in "${targets[@]}"; do
	if [ -d "regressions/$target" ] && [ -n "$(ls -A "regressions/$target")" ]; then
		echo "[fuzz] $target: replaying regressions/$target"
		"${fuzz[@]}" run "${build_flags[@]}" "$target" "regressions/$target" -- -runs=0
	fi
done

# Each target is one single-threaded process: run as many at once as there are cores.
run_target() {
	local target="$1"
	local corpus="$work/corpus/$target" artifacts="$work/artifacts/$target"
	mkdir -p "$corpus" "$artifacts"
	local status=0
	local seeds=()
	[ -d "seeds/$target" ] && seeds=("seeds/$target")
	"${fuzz[@]}" run "${build_flags[@]}" "$target" "$corpus" "${seeds[@]}" -- \
		-max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=20 \
		-artifact_prefix="$artifacts/" -print_final_stats=1 > "$work/$target.log" 2>&1 ||
		status=$?
	echo "$status" > "$work/$target.status"
}
parallel="${DLLM_FUZZ_JOBS:-$(nproc)}"
for target in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do
		sleep 1
	done
	echo "[fuzz] $target: ${seconds} s"
	rm -f "$work/$target.status"
	run_target "$target" &
done
wait

failed=()
summary=()
for target in "${targets[@]}"; do
	status="$(cat "$work/$target.status" 2> /dev/null || echo 1)"
	log="$work/$target.log"
	runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
	peak="$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
	inputs="$(find "$work/corpus/$target" -type f | wc -l)"
	summary+=("$(printf '%-20s %10s %8s %8s' "$target" "$runs" "$inputs" "$peak")")
	if [ $status -ne 0 ]; then
		tail -n 40 "$log"
		echo "[fuzz] $target FAILED (exit $status); the input is in $work/artifacts/$target/, the log in $log" >&2
		failed+=("$target")
	fi
done

printf '\n%-20s %10s %8s %8s\n' target executions corpus peak_MiB
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
	echo "[fuzz] crashes in: ${failed[*]}" >&2
	exit 1
fi
echo "[fuzz] no crash in ${#targets[@]} targets, ${seconds} s each, ${parallel} at a time"
