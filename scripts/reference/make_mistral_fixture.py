#!/usr/bin/env python3
"""Reference fixture for dllm-inference's parity test (not run in CI).

Builds a small random Mistral checkpoint with Hugging Face transformers (grouped-query
attention, several safetensors files, a sliding window the test prompt crosses) and
records what `MistralForCausalLM` computes on it: the logits of every prompt position,
and greedy generation's tokens and the logits each was chosen from.

    python3 scripts/reference/make_mistral_fixture.py inference/tests/fixtures/reference

Needs torch, transformers and safetensors (pip). Writes the model directory plus
`expected.safetensors` and `expected.json`; commit them (well under 5 MB).
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import MistralConfig, MistralForCausalLM

SEED = 20261121
PROMPT = [1, 17, 203, 5, 99, 150, 42, 7, 260, 311, 12, 64, 128, 255, 3, 8, 77, 190, 230, 301]
NEW_TOKENS = 12


def main(out: Path) -> None:
    torch.manual_seed(SEED)
    config = MistralConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        sliding_window=8,  # the 20-token prompt and the generation cross it
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    model = MistralForCausalLM(config).eval()
    # Random init uses std 0.02, which makes every logit nearly equal; widen the
    # weights so greedy choices are well separated and the test means something.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            elif "embed_tokens" in name:
                param.copy_(torch.randn_like(param))
            else:
                param.copy_(torch.randn_like(param) / param.shape[1] ** 0.5)

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="300KB")

    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        prompt_logits = model(ids).logits[0].float().contiguous()
        generated = model.generate(
            ids,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
    tokens = generated.sequences[0, len(PROMPT):].tolist()
    generated_logits = torch.cat(generated.logits, dim=0).float().contiguous()

    save_file(
        {"prompt_logits": prompt_logits, "generated_logits": generated_logits},
        str(out / "expected.safetensors"),
    )
    import transformers

    (out / "expected.json").write_text(
        json.dumps(
            {
                "prompt": PROMPT,
                "generated": tokens,
                "seed": SEED,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "attn_implementation": "eager",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}: generated {tokens}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "inference/tests/fixtures/reference"))
