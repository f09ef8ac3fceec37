"""Streams a chat completion from DLLM's OpenAI-compatible API with the official SDK.

    python3 scripts/py/chat_stream.py "What is DLLM?"

The endpoint and key come from the SDK's own environment variables: OPENAI_BASE_URL
(default here: http://127.0.0.1:8080/v1) and OPENAI_API_KEY (any text when the server
has no key). Prints the tokens as they come, then the chain's record of the task.
"""

import os
import sys

from openai import OpenAI


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: chat_stream.py PROMPT", file=sys.stderr)
        return 2
    client = OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
        api_key=os.environ.get("OPENAI_API_KEY", "unused"),
        max_retries=0,
    )
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": sys.argv[1]}],
        max_tokens=int(os.environ.get("MAX_TOKENS", "12")),
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    dllm, usage = None, None
    for chunk in stream:
        for choice in chunk.choices:
            print(choice.delta.content or "", end="", flush=True)
        # DLLM's own fields ride along as extra fields of the chunk.
        dllm = (chunk.model_extra or {}).get("dllm", dllm)
        usage = chunk.usage or usage
    print()
    print(f"task {dllm['task']}: {dllm['status']}, verified {dllm['verified']}, "
          f"fee {dllm['fee']} planck, refunded {dllm['refunded']} planck, "
          f"{usage.prompt_tokens} + {usage.completion_tokens} tokens")
    return 0 if dllm["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
