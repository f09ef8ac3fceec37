#!/usr/bin/env python3
"""Writes a random model of Mistral-7B's shapes (any number of layers) in the Hugging
Face layout that `dllm-infer` and transformers both load, with torch, on a GPU when
there is one: seconds for the 14.5 GB of bf16 weights where `dllm-infer make-tiny`
(one CPU thread) takes minutes. The weights are drawn as make-tiny draws them (norms
around 1, projections scaled by 1/sqrt(fan-in)), from torch's generator, so they are
not make-tiny's bytes. The tokenizer is Mistral's real v1 tokenizer, committed in
inference/assets.

    python3 scripts/gpu/make_random_mistral.py --out DIR [--layers 32] [--dtype bf16]
        [--device cuda] [--rope-theta 10000] [--seed 1]
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER = os.path.join(ROOT, "inference", "assets", "mistral-v1-tokenizer", "tokenizer.json")
HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 4096, 14336, 32, 8, 128, 32000
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def config(layers, rope_theta, dtype):
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "rope_theta": rope_theta,
        "rms_norm_eps": 1e-5,
        "sliding_window": 4096,
        "vocab_size": VOCAB,
        "max_position_embeddings": 32768,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "torch_dtype": {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rope-theta", type=float, default=10000.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.layers < 1:
        parser.error("--layers must be at least 1")
    os.makedirs(args.out, exist_ok=True)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    dtype = DTYPES[args.dtype]

    def normal(shape, std, mean=0.0):
        values = torch.randn(shape, generator=generator, device=args.device, dtype=torch.float32)
        return (values * std + mean).to(dtype).cpu().contiguous()

    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    weight_map, total = {}, 0
    # One file per layer, the embedding in the first, norm and head in the last: a
    # shard loads only its layers' files.
    for layer in range(args.layers):
        p = f"model.layers.{layer}"
        tensors = {
            f"{p}.input_layernorm.weight": normal([HIDDEN], 0.1, 1.0),
            f"{p}.self_attn.q_proj.weight": normal([q, HIDDEN], HIDDEN ** -0.5),
            f"{p}.self_attn.k_proj.weight": normal([kv, HIDDEN], HIDDEN ** -0.5),
            f"{p}.self_attn.v_proj.weight": normal([kv, HIDDEN], HIDDEN ** -0.5),
            f"{p}.self_attn.o_proj.weight": normal([HIDDEN, q], q ** -0.5),
            f"{p}.post_attention_layernorm.weight": normal([HIDDEN], 0.1, 1.0),
            f"{p}.mlp.gate_proj.weight": normal([INTERMEDIATE, HIDDEN], HIDDEN ** -0.5),
            f"{p}.mlp.up_proj.weight": normal([INTERMEDIATE, HIDDEN], HIDDEN ** -0.5),
            f"{p}.mlp.down_proj.weight": normal([HIDDEN, INTERMEDIATE], INTERMEDIATE ** -0.5),
        }
        if layer == 0:
            tensors["model.embed_tokens.weight"] = normal([VOCAB, HIDDEN], 1.0)
        if layer == args.layers - 1:
            tensors["model.norm.weight"] = normal([HIDDEN], 0.1, 1.0)
            tensors["lm_head.weight"] = normal([VOCAB, HIDDEN], HIDDEN ** -0.5)
        name = f"model-{layer + 1:05}-of-{args.layers:05}.safetensors"
        save_file(tensors, os.path.join(args.out, name), metadata={"format": "pt"})
        for key, tensor in tensors.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config(args.layers, args.rope_theta, args.dtype), f, indent=1)
    shutil.copy(TOKENIZER, os.path.join(args.out, "tokenizer.json"))
    print(f"{args.out}: {args.layers} layers, {total / 1e9:.2f} GB of {args.dtype}")


if __name__ == "__main__":
    main()
