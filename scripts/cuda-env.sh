# Sourced by scripts/cuda-check.sh and scripts/gpu-bench.sh: nvcc (with its crt headers
# and the nvvm back end) and the CUDA headers from NVIDIA's PyPI wheels, CUDA 13.0 to
# match the GPU machines' driver 580 (PTX from a newer nvcc may not load there), and the
# environment candle's build reads. candle-kernels compiles its kernels to PTX for compute
# capability 9.0 (H100/H200) at build time. A check links nothing; a build links the CUDA
# libraries (scripts/gpu-bench.sh provides them).
version=13.0
prefix="${DLLM_CUDA_PREFIX:-$HOME/.cache/dllm-cuda-$version}"
cuda_root="$prefix/nvidia/cu13"
if [[ ! -x "$cuda_root/bin/nvcc" || ! -x "$cuda_root/nvvm/bin/cicc" || ! -f "$cuda_root/include/crt/host_config.h" ]]; then
	echo "[cuda] fetching nvcc and CUDA $version headers from PyPI into $prefix"
	wheels="$(mktemp -d)"
	python3 -m pip download --quiet --no-deps -d "$wheels" \
		"nvidia-cuda-nvcc==$version.*" "nvidia-cuda-crt==$version.*" "nvidia-nvvm==$version.*" \
		"nvidia-cuda-runtime==$version.*" "nvidia-cuda-cccl==$version.*"
	mkdir -p "$prefix"
	for wheel in "$wheels"/*.whl; do
		python3 -m zipfile -e "$wheel" "$prefix"
	done
	chmod +x "$cuda_root"/bin/* "$cuda_root"/nvvm/bin/* 2>/dev/null || true
	rm -rf "$wheels"
fi

export CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_HOME="$cuda_root"
export PATH="$cuda_root/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# cudarc picks its bindings by this version when no driver is present.
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
# CCCL headers live in include/cccl in the CUDA 13 wheels.
export NVCC_PREPEND_FLAGS="${NVCC_PREPEND_FLAGS:--I$cuda_root/include/cccl}"
