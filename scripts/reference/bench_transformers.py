#!/usr/bin/env python3
"""Decode speed of Hugging Face transformers' MistralForCausalLM on a model directory,
for comparison with `dllm-infer bench` on the same checkpoint (not run in CI).

    python3 scripts/reference/bench_transformers.py MODEL_DIR [PROMPT_LEN] [GEN] [THREADS] [DEVICE] [DTYPE]

Uses the same pseudo-random prompt as `dllm-infer bench`, KV cache on; f32 on the CPU
unless DEVICE (cpu, cuda) and DTYPE (f32, bf16, f16) say otherwise. Like `dllm-infer
bench`, it runs a short warm-up generation before the timed one.
"""

import sys
import time

import torch
from transformers import MistralForCausalLM


def main() -> None:
    model_dir = sys.argv[1]
    prompt_len = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    gen = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    if len(sys.argv) > 4:
        torch.set_num_threads(int(sys.argv[4]))
    device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[
        sys.argv[6] if len(sys.argv) > 6 else "f32"]
    model = MistralForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    # transformers before 4.56 ignores `dtype=` (it took `torch_dtype=`) and loads f32.
    assert model.dtype == dtype, f"loaded {model.dtype}, asked for {dtype}: transformers >= 4.56"
    vocab = model.config.vocab_size
    prompt = [(i * 2654435761) % vocab for i in range(prompt_len)]

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(steps):
        """Prefill, then `steps` decode steps; the seconds of each part."""
        ids = torch.tensor([prompt], device=device)
        sync()
        start = time.perf_counter()
        out = model(ids, use_cache=True)
        token = out.logits[0, -1].argmax().view(1, 1)
        sync()
        prefill = time.perf_counter() - start
        past = out.past_key_values
        start = time.perf_counter()
        for _ in range(steps):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[0, -1].argmax().view(1, 1)
        sync()
        return prefill, time.perf_counter() - start

    with torch.no_grad():
        run(1)
        prefill, decode = run(gen - 1)
    print(f"threads={torch.get_num_threads()} prefill {prompt_len / prefill:.1f} tokens/s, "
          f"decode {(gen - 1) / decode:.2f} tokens/s")


if __name__ == "__main__":
    main()
