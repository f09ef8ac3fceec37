#!/usr/bin/env bash
# The GPU benchmark, in two halves (docs/benchmarks.md, "GPU"):
#
#   scripts/gpu-bench.sh             here, with the Rust toolchain: builds a CUDA
#                                    `dllm-infer` (nvcc from PyPI, scripts/cuda-env.sh)
#                                    into gpu-bench/, the one folder to carry
#   scripts/gpu/run.sh               there, on the GPU machine (an H200 with nvcc and
#                                    PyTorch, no Rust, no network), from this checkout
#                                    with gpu-bench/ beside it: weights, bench, matrix
#   scripts/gpu-bench.sh --cpu-check here: run.sh's every step on this CPU (one layer,
#                                    `--device cpu`, the CPU build), to test the script;
#                                    needs torch and transformers (PYTHON=...)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh

# candle links cudarc dynamically: the linker wants libcuda, libcudart, libnvrtc,
# libcurand, libcublas and libcublasLt. All but libcuda come from NVIDIA's PyPI wheels
# (CUDA 13.0; the GPU machine's PyTorch ships the same libraries, where run.sh finds them
# at run time; the binary keeps only cudart, cublas and curand besides libcuda). libcuda is
# the driver's, which no wheel carries: the linker gets a stub that exports the driver
# functions cudarc declares (what the CUDA toolkit's lib/stubs/libcuda.so is), and the
# binary loads the driver's real libcuda.so.1 on the GPU machine.
link_time_libraries() {
	local lib="$cuda_root/lib"
	if [[ ! -f "$lib/libcublasLt.so.13" || ! -f "$lib/libnvrtc.so.13" || ! -f "$lib/libcurand.so.10" ]]; then
		echo "[gpu-bench] fetching the CUDA $version libraries to link against from PyPI"
		local wheels
		wheels="$(mktemp -d)"
		python3 -m pip download --quiet --no-deps -d "$wheels" \
			"nvidia-cublas==$version.*" "nvidia-cuda-nvrtc==$version.*" "nvidia-curand==10.4.0.*"
		for wheel in "$wheels"/*.whl; do
			python3 -m zipfile -e "$wheel" "$prefix"
		done
		rm -rf "$wheels"
	fi
	for name in cudart.so.13 cublas.so.13 cublasLt.so.13 nvrtc.so.13 curand.so.10; do
		ln -sf "lib$name" "$lib/lib${name%.so.*}.so"
	done
	local cudarc stub="$lib/stubs" locked
	locked="cudarc-$(sed -n '/^name = "cudarc"$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)"
	find_cudarc() {
		find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "$locked" 2>/dev/null | head -1 || true
	}
	cudarc="$(find_cudarc)"
	if [[ -z "$cudarc" ]]; then
		cargo fetch --locked
		cudarc="$(find_cudarc)"
	fi
	[[ -n "$cudarc" ]] || { echo "[gpu-bench] $locked's sources are missing after cargo fetch" >&2; exit 1; }
	mkdir -p "$stub"
	# Each name once: cudarc declares some per CUDA version.
	grep -o '^pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc/src/driver/sys/mod.rs" | awk '{print $4}' | sort -u |
		awk '{print "void " $1 "(void) {}"}' >"$stub/libcuda-stub.c"
	cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/libcuda-stub.c"
}

case "${1:-}" in
"")
	source scripts/cuda-env.sh
	link_time_libraries
	# A target directory of its own: the CUDA features would otherwise rebuild candle and
	# everything above it in the CPU build's directory, back and forth.
	CARGO_TARGET_DIR="$CARGO_TARGET_DIR/cuda" \
		cargo build --release --locked -p dllm-inference --features cuda --bin dllm-infer
	mkdir -p gpu-bench
	cp "$CARGO_TARGET_DIR/cuda/release/dllm-infer" gpu-bench/dllm-infer
	strip gpu-bench/dllm-infer
	ls -l gpu-bench/dllm-infer
	echo "carry gpu-bench/ to the GPU machine and run scripts/gpu/run.sh there"
	;;
--cpu-check)
	# The whole workspace, as every build here (docs/development.md): one package alone
	# unifies features differently and rebuilds what the next workspace build undoes.
	cargo build --release --locked --workspace --features "$DLLM_FEATURES"
	DLLM_INFER="$CARGO_TARGET_DIR/release/dllm-infer" DLLM_GPU_WORK="${DLLM_GPU_WORK:-/tmp/dllm-gpu-cpu-check}" \
		scripts/gpu/run.sh --device cpu --layers 1 --prompt-len 32 --gen 8 --prompts 1
	;;
*)
	echo "unknown option $1 (none, or --cpu-check)" >&2
	exit 2
	;;
esac
