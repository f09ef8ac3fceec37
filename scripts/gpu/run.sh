#!/usr/bin/env bash
# The GPU benchmark's prepared script, run on the GPU machine (nvcc, PyTorch, no Rust, no
# network) from a checkout that holds the CUDA `dllm-infer` that scripts/gpu-bench.sh
# built (gpu-bench/dllm-infer). Prints one report; the raw outputs stay in $OUT.
#
#   scripts/gpu/run.sh [--device cuda:0] [--layers 32] [--prompt-len 512] [--gen 128]
#                      [--prompts 1] [--steps weights,bench,matrix]
#
# A device call is limited to 10 minutes: run the steps in two calls if need be (the
# weights stay in DLLM_GPU_WORK, /tmp/dllm-gpu-bench, while the machine stays warm).
#
# 1. random Mistral-7B-shaped bf16 weights, generated there with torch;
# 2. decode and prefill tokens/s: dllm-infer bf16 on the GPU, Hugging Face transformers
#    bf16 on the same GPU, and the bound the GPU's memory bandwidth sets (H200: 4.8 TB/s
#    by the datasheet, and what torch measures reading 4 GiB);
# 3. the fingerprint matrix: records generated on cuda-bf16 verified on cpu-f32 (and the
#    other way round) accept, the same records with one token changed reject.
#
# `--device cpu --layers 1` runs every step on a machine without a GPU, to test the
# script (scripts/gpu-bench.sh --cpu-check does that).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

device=cuda:0 layers=32 prompt_len=512 gen=128 prompts=1 steps=weights,bench,matrix
while (($#)); do
	case "$1" in
	--device) device="$2"; shift 2 ;;
	--layers) layers="$2"; shift 2 ;;
	--prompt-len) prompt_len="$2"; shift 2 ;;
	--gen) gen="$2"; shift 2 ;;
	--prompts) prompts="$2"; shift 2 ;;
	--steps) steps="$2"; shift 2 ;;
	*) echo "unknown option $1 (--device, --layers, --prompt-len, --gen, --prompts, --steps)" >&2; exit 2 ;;
	esac
done
infer="${DLLM_INFER:-$root/gpu-bench/dllm-infer}"
[[ -x "$infer" ]] || { echo "$infer is missing: build it with scripts/gpu-bench.sh" >&2; exit 1; }
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
work="${DLLM_GPU_WORK:-/tmp/dllm-gpu-bench}"
model="$work/mistral-7b-x$layers"
python="${PYTHON:-python3}"
torch_device="${device%%:*}"
[[ "$device" == cuda:* ]] && torch_device="cuda"
if [[ "$torch_device" == cuda ]]; then
	# The CUDA libraries the binary links (cublas, cublasLt, nvrtc, curand) are those of
	# PyTorch's NVIDIA wheels; libcuda is the driver's.
	nvidia_libs="$("$python" -c 'import glob, os, nvidia
print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__
                       for p in glob.glob(os.path.join(d, "**", "lib*.so*"), recursive=True)})))')"
	export LD_LIBRARY_PATH="$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	libraries="$(ldd "$infer")"
	if grep -q "not found" <<<"$libraries"; then
		echo "$infer cannot find its CUDA libraries:" >&2
		grep "not found" <<<"$libraries" >&2
		exit 1
	fi
fi
say() { printf '\n## %s\n\n' "$*" | tee -a "$out/report.md"; }
: >"$out/report.md"

say "machine"
{
	"$python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
	[[ "$torch_device" == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
	"$infer" --version
} 2>&1 | tee -a "$out/report.md"

# Whether `--steps` names this step.
step() { [[ ",$steps," == *",$1,"* ]]; }

if step weights && [[ ! -f "$model/model.safetensors.index.json" ]]; then
	say "weights ($layers layers of Mistral-7B's shapes, bf16, torch on $torch_device)"
	started=$SECONDS
	"$python" scripts/gpu/make_random_mistral.py \
		--out "$model" --layers "$layers" --dtype bf16 --device "$torch_device" 2>&1 | tee -a "$out/report.md"
	echo "written in $((SECONDS - started)) s" | tee -a "$out/report.md"
fi

[[ -f "$model/model.safetensors.index.json" ]] || {
	echo "no weights in $model: run with --steps weights first" >&2
	exit 1
}

if step bench; then
say "decode and prefill ($prompt_len prompt tokens, $gen generated)"
"$infer" bench --model "$model" --device "$device" --dtype bf16 \
	--prompt-len "$prompt_len" --gen "$gen" | tee "$out/dllm-bench.md" | tee -a "$out/report.md"
"$python" scripts/reference/bench_transformers.py "$model" "$prompt_len" "$gen" "$(nproc)" "$torch_device" bf16 \
	2>&1 | tail -1 | tee "$out/hf-bench.txt" | tee -a "$out/report.md"
"$python" - "$model" "$torch_device" <<'EOF' | tee -a "$out/report.md"
import json, os, sys, time, torch
model, device = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(model, "model.safetensors.index.json")))
config = json.load(open(os.path.join(model, "config.json")))
embedding = config["vocab_size"] * config["hidden_size"] * 2
per_token = index["metadata"]["total_size"] - embedding
x = torch.ones(2 << 30, dtype=torch.bfloat16, device=device)  # 4 GiB
best = 0.0
for _ in range(5):
    if device == "cuda": torch.cuda.synchronize()
    start = time.perf_counter(); x.sum()
    if device == "cuda": torch.cuda.synchronize()
    best = max(best, x.numel() * 2 / (time.perf_counter() - start))
print(f"weights read per decoded token: {per_token / 1e9:.2f} GB")
print(f"measured read bandwidth (torch sum over 4 GiB): {best / 1e12:.2f} TB/s -> bound {best / per_token:.0f} tokens/s")
if device == "cuda":
    name = torch.cuda.get_device_name()
    datasheet = {"H200": 4.8e12, "H100": 3.35e12}  # SXM parts' memory bandwidth
    for part, bandwidth in datasheet.items():
        if part in name:
            print(f"datasheet bound ({name}, {bandwidth / 1e12} TB/s): {bandwidth / per_token:.0f} tokens/s")
EOF

# `verify`'s exit status as a word: 0 accepted, 1 rejected, anything else an error.
verdict() {
	local verifier="$1" record="$2" status=0
	"$infer" verify --model "$model" --device "${verifier%/*}" --dtype "${verifier#*/}" \
		--record "$record" --tolerance bf16 >"$record.verify" 2>&1 || status=$?
	case "$status" in 0) echo accepted ;; 1) echo rejected ;; *) echo "error ($status)" ;; esac
}

fi

if step matrix; then
say "fingerprint matrix: generated on $device bf16, verified on cpu f32 (and back)"
# Prompts of the bench's kind: fixed pseudo-random ids below the vocabulary.
printf '| generator | verifier | prompt | sampling | honest record | one token changed |\n| --- | --- | --- | --- | --- | --- |\n' | tee -a "$out/report.md"
for p in $(seq 1 "$prompts"); do
	tokens="$("$python" -c "print(','.join(str(1 + (i * 2654435761 + $p * 40503) % 31999) for i in range(64)))")"
	for sampling in greedy sampled; do
		extra=(--temperature 0)
		[[ "$sampling" == sampled ]] && extra=(--temperature 0.8 --top-p 0.95 --seed "$p")
		for pair in "$device/bf16 cpu/f32" "cpu/f32 $device/bf16"; do
			read -r generator verifier <<<"$pair"
			record="$out/record-$p-$sampling-${generator//[:\/]/_}.json"
			"$infer" generate --model "$model" --device "${generator%/*}" --dtype "${generator#*/}" \
				--prompt-tokens "$tokens" --max-tokens 32 "${extra[@]}" --record "$record" >/dev/null
			honest="$(verdict "$verifier" "$record")"
			# The same record with its first generated token changed.
			"$python" - "$record" <<'EOF'
import json, sys
path = sys.argv[1]
record = json.load(open(path))
record["generated_tokens"][0] = (record["generated_tokens"][0] + 1) % 32000
json.dump(record, open(path + ".tampered", "w"))
EOF
			tampered="$(verdict "$verifier" "$record.tampered")"
			echo "| $generator | $verifier | $p | $sampling | $honest | $tampered |" | tee -a "$out/report.md"
		done
	done
done
fi
echo "report: $out/report.md"
