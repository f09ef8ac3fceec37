#!/usr/bin/env python3
"""CPU decode and prefill of dllm-inference, candle-transformers' Mistral and Hugging Face
transformers, side by side in one run, on the mid model and on one and two layers of
Mistral-7B's shapes; then Mistral-7B extrapolated from the two. Prints the tables of
docs/benchmarks.md (not run in CI: it needs torch and transformers, and minutes).

    python3 -m venv /tmp/hf && /tmp/hf/bin/pip install torch transformers safetensors
    cargo build --release -p dllm-inference --bin dllm-infer
    /tmp/hf/bin/python scripts/reference/bench_cpu.py [--rounds 3] [--threads 2] [--models DIR]

Each round runs every configuration once, one after the other, so that the machine's
drift touches all of them alike; the tables give the median and the range.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/dllm-target"))
INFER = os.path.join(TARGET, "release", "dllm-infer")
HF_BENCH = os.path.join(ROOT, "scripts", "reference", "bench_transformers.py")

MID = ["--layers", "8", "--hidden", "1024", "--heads", "16", "--kv-heads", "4",
       "--intermediate", "3584", "--vocab", "32000", "--sliding-window", "4096",
       "--max-positions", "4096", "--files", "4", "--seed", "1"]
MODELS = {
    "mid": (MID, 128, 128, ["0..8", "0..4,4..8"]),
    "mistral-7b x1": (["--shape", "mistral-7b", "--layers", "1", "--seed", "1"], 128, 64, ["0..1"]),
    "mistral-7b x2": (["--shape", "mistral-7b", "--layers", "2", "--seed", "1"], 128, 64, ["0..2"]),
}
LAYERS_7B = 32
EMBEDDING_MIB = 32000 * 4096 * 4 / 2**20


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def table(stdout):
    """The `| metric | value |` rows of `dllm-infer bench` as {metric: first number}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            number = re.search(r"-?\d+(\.\d+)?", cells[1])
            if number:
                rows[re.sub(r" \(.*", "", cells[0])] = float(number.group())
    return rows


def summary(values):
    m = statistics.median(values)
    return f"{m:.1f} [{min(values):.1f}–{max(values):.1f}]" if len(values) > 1 else f"{m:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=os.path.expanduser("~/.cache/dllm-bench-models"))
    args = parser.parse_args()
    if not os.access(INFER, os.X_OK):
        sys.exit(f"{INFER} is missing: cargo build --release -p dllm-inference --bin dllm-infer")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    results = {}  # (model, configuration) -> {metric: [values]}

    def record(model, configuration, metrics):
        slot = results.setdefault((model, configuration), {})
        for key, value in metrics.items():
            slot.setdefault(key, []).append(value)

    for name, (spec, _, _, _) in MODELS.items():
        directory = os.path.join(args.models, name.replace(" ", "-"))
        if not os.path.exists(os.path.join(directory, "model.safetensors.index.json")):
            run([INFER, "make-tiny", "--out", directory] + spec)
    bandwidth = []
    for round_index in range(args.rounds):
        for name, (_, prompt, gen, splits) in MODELS.items():
            directory = os.path.join(args.models, name.replace(" ", "-"))
            for index, shards in enumerate(splits):
                cmd = [INFER, "bench", "--model", directory, "--shards", shards,
                       "--prompt-len", str(prompt), "--gen", str(gen)]
                if index == 0:
                    cmd += ["--reference", "--bandwidth"]
                rows = table(run(cmd, env))
                label = "one shard" if index == 0 else f"shards {shards}"
                record(name, f"dllm-inference, {label}", {
                    "decode": rows["decode"], "prefill": rows["prefill"],
                    "rss": rows["RSS after decode"], "peak": rows["peak RSS"],
                    "per_token_mb": rows.get("weights read per decoded token", 0.0)})
                if index == 0:
                    record(name, "candle-transformers Model", {
                        "decode": rows["candle-transformers Model decode"]})
                    bandwidth.append(rows["memory read bandwidth"])
            hf = run([sys.executable, HF_BENCH, directory, str(prompt), str(gen),
                      str(args.threads)])
            match = re.search(r"prefill ([\d.]+) tokens/s, decode ([\d.]+)", hf)
            record(name, "Hugging Face transformers", {
                "prefill": float(match.group(1)), "decode": float(match.group(2))})
        print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr)

    gbs = statistics.median(bandwidth)
    print(f"Memory read bandwidth ({args.threads} threads, 1 GiB): {summary(bandwidth)} GB/s\n")
    print("| model | configuration | decode tokens/s | prefill tokens/s | decode / HF "
          "| prefill / HF | decode / bound | RSS after decode (peak) MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in MODELS:
        hf = results[(name, "Hugging Face transformers")]
        ours = results[(name, "dllm-inference, one shard")]
        bound = gbs * 1e3 / statistics.median(ours["per_token_mb"])
        for (model, configuration), metrics in results.items():
            if model != name:
                continue
            decode = statistics.median(metrics["decode"])
            cells = [name, configuration, summary(metrics["decode"])]
            cells.append(summary(metrics["prefill"]) if "prefill" in metrics else "–")
            cells.append(f"{decode / statistics.median(hf['decode']):.2f}")
            cells.append(f"{statistics.median(metrics['prefill']) / statistics.median(hf['prefill']):.2f}"
                         if "prefill" in metrics else "–")
            cells.append(f"{100 * decode / bound:.0f}%")
            cells.append(f"{statistics.median(metrics['rss']):.0f} ({statistics.median(metrics['peak']):.0f})"
                         if "rss" in metrics else "–")
            print("| " + " | ".join(cells) + " |")

    # Mistral-7B from one and two layers: per token, t(L) = fixed + L * per_layer.
    print("\nMistral-7B (32 layers, f32) extrapolated from one and two layers:\n")
    print("| engine | per layer ms/token | rest ms/token | 32 layers ms/token | tokens/s |")
    print("| --- | --- | --- | --- | --- |")
    for configuration in ["dllm-inference, one shard", "candle-transformers Model",
                          "Hugging Face transformers"]:
        one = 1e3 / statistics.median(results[("mistral-7b x1", configuration)]["decode"])
        two = 1e3 / statistics.median(results[("mistral-7b x2", configuration)]["decode"])
        per_layer, rest = two - one, 2 * one - two
        total = rest + LAYERS_7B * per_layer
        print(f"| {configuration} | {per_layer:.1f} | {rest:.1f} | {total:.0f} | {1e3 / total:.2f} |")
    one = results[("mistral-7b x1", "dllm-inference, one shard")]
    two = results[("mistral-7b x2", "dllm-inference, one shard")]
    layer_mib = statistics.median(two["rss"]) - statistics.median(one["rss"])
    process_mib = statistics.median(one["rss"]) - layer_mib - 2 * EMBEDDING_MIB
    per_layer_ms = 1e3 / statistics.median(two["decode"]) - 1e3 / statistics.median(one["decode"])
    rest_ms = 2e3 / statistics.median(one["decode"]) - 1e3 / statistics.median(two["decode"])
    print(f"\nResident memory per chunk of Mistral-7B in f32 (one layer {layer_mib:.0f} MiB, "
          f"embedding and head {EMBEDDING_MIB:.0f} MiB each, the process {process_mib:.0f} MiB; "
          "bf16 halves the weights), and the decode time each chunk adds per token:\n")
    print("| chunks | layers per chunk | first chunk MiB | middle chunk MiB | last chunk MiB "
          "| first / middle / last chunk ms per token |")
    print("| --- | --- | --- | --- | --- | --- |")
    for chunks in [1, 2, 4, 8]:
        layers = LAYERS_7B // chunks
        body = process_mib + layers * layer_mib
        body_ms = layers * per_layer_ms
        if chunks == 1:
            memory = [f"{body + 2 * EMBEDDING_MIB:.0f}", "–", "–"]
            times = f"{body_ms + rest_ms:.0f}"
        else:
            middle = f"{body:.0f}" if chunks > 2 else "–"
            memory = [f"{body + EMBEDDING_MIB:.0f}", middle, f"{body + EMBEDDING_MIB:.0f}"]
            middle_ms = f"{body_ms:.0f}" if chunks > 2 else "–"
            times = f"{body_ms:.0f} / {middle_ms} / {body_ms + rest_ms:.0f}"
        print(f"| {chunks} | {layers} | " + " | ".join(memory) + f" | {times} |")


if __name__ == "__main__":
    main()
