#!/usr/bin/env python3
"""Decode speed of Hugging Face transformers' MistralForCausalLM on a model directory,
for comparison with `dllm-infer bench` on the same checkpoint (not run in CI).

    python3 scripts/reference/bench_transformers.py MODEL_DIR [PROMPT_LEN] [GEN] [THREADS]

Uses the same pseudo-random prompt as `dllm-infer bench`, f32 on CPU, KV cache on.
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
    model = MistralForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    prompt = [(i * 2654435761) % vocab for i in range(prompt_len)]
    with torch.no_grad():
        ids = torch.tensor([prompt])
        start = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill = time.perf_counter() - start
        past = out.past_key_values
        token = out.logits[0, -1].argmax().view(1, 1)
        start = time.perf_counter()
        for _ in range(gen - 1):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[0, -1].argmax().view(1, 1)
        decode = time.perf_counter() - start
    print(f"threads={torch.get_num_threads()} prefill {prompt_len / prefill:.1f} tokens/s, "
          f"decode {(gen - 1) / decode:.2f} tokens/s")


if __name__ == "__main__":
    main()
