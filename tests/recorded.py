"""Streams as upstreams send them, written by hand from ../shared/quirks.md.

Each is the exact bytes of a response body. Tests replay them whole, split at
every byte, or through a real mitmdump.
"""

from __future__ import annotations

import json

NIM_ID = "8f20d6699e194a0abed38c671384d32d"
NIM_MODEL = "qwen/qwen3-next-80b-a3b-instruct"
# Text with 2-, 3- and 4-byte UTF-8 characters, so splits land inside them.
NIM_TEXT_PIECES = ["Ta", "bs, ", "naïve", " café — ", "東京 ", "🚀", "\n", "\"quoted\""]
NIM_TEXT = "".join(NIM_TEXT_PIECES)


def nim_chunk(content: str | None, *, role: str | None = None, finish_reason: str | None = None, usage: dict | None = None) -> bytes:
    """One NVIDIA NIM (SGLang-backed) chunk, key order and nulls as NIM sends them."""
    chunk = {
        "id": NIM_ID,
        "object": "chat.completion.chunk",
        "created": 1754000000,
        "model": NIM_MODEL,
        "choices": [
            {
                "index": 0,
                "delta": {"role": role, "content": content, "reasoning_content": None, "tool_calls": None},
                "logprobs": None,
                "finish_reason": finish_reason,
                "matched_stop": 151645 if finish_reason else None,
            }
        ],
        "usage": usage,
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def nim_usage(completion_tokens: int) -> dict:
    """NIM's running usage, as it sends it on every chunk once usage was asked for."""
    return {"prompt_tokens": 12, "total_tokens": 12 + completion_tokens, "completion_tokens": completion_tokens, "prompt_tokens_details": None}


NIM_STREAM_EVENTS = (
    [nim_chunk(None, role="assistant")]
    + [nim_chunk(piece) for piece in NIM_TEXT_PIECES]
    + [nim_chunk(None, finish_reason="stop"), b"data: [DONE]\n\n"]
)
NIM_STREAM = b"".join(NIM_STREAM_EVENTS)
# With stream_options.include_usage, NIM puts the running usage on every chunk (CliRelay #658).
NIM_USAGE_STREAM_EVENTS = (
    [nim_chunk(None, role="assistant", usage=nim_usage(0))]
    + [nim_chunk(piece, usage=nim_usage(i + 1)) for i, piece in enumerate(NIM_TEXT_PIECES)]
    + [nim_chunk(None, finish_reason="stop", usage=nim_usage(len(NIM_TEXT_PIECES))), b"data: [DONE]\n\n"]
)


def openai_chunk(delta: dict, finish_reason: str | None = None, **extra) -> bytes:
    """A chunk as our output writes it (OpenAI's shape, nulls dropped from the delta)."""
    chunk = {
        "id": NIM_ID,
        "object": "chat.completion.chunk",
        "created": 1754000000,
        "model": NIM_MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **extra}],
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


# What a client must receive for NIM_STREAM.
NIM_STREAM_REPAIRED = b"".join(
    [openai_chunk({"role": "assistant", "content": ""})]
    + [openai_chunk({"content": piece}) for piece in NIM_TEXT_PIECES]
    + [
        b'data: {"id":"%s","object":"chat.completion.chunk","created":1754000000,"model":"%s",'
        b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop","matched_stop":151645}]}\n\n'
        % (NIM_ID.encode(), NIM_MODEL.encode()),
        b"data: [DONE]\n\n",
    ]
)

# A stream already in OpenAI's shape: what the addon itself writes.
OPENAI_STREAM = b"".join(
    [openai_chunk({"role": "assistant", "content": ""})]
    + [openai_chunk({"content": piece}) for piece in ["Hello", ", ", "world", "!"]]
    + [openai_chunk({}, "stop"), b"data: [DONE]\n\n"]
)

# TGI (axum): no space after `data:`, keep-alive comments, role on every chunk, eos_token.
TGI_STREAM = (
    b'data:{"object":"chat.completion.chunk","id":"","created":1732000000,"model":"tgi","system_fingerprint":"3.0.0",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b":\n\n"
    b'data:{"object":"chat.completion.chunk","id":"","created":1732000000,"model":"tgi","system_fingerprint":"3.0.0",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"lo"},"logprobs":null,"finish_reason":"eos_token"}],"usage":null}\n\n'
    b"data:[DONE]\n\n"
)

# exo (2024): chunks called chat.completion, no [DONE], no finish_reason.
EXO_STREAM = (
    b'data: {"id":"chatcmpl-exo1","object":"chat.completion","created":1730000000,"model":"llama-3.2-1b",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-exo1","object":"chat.completion","created":1730000000,"model":"llama-3.2-1b",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":" there"},"finish_reason":null}]}\n\n'
)

# Ollama (< 0.4.7): tool call deltas without index; two calls, each whole in one delta.
OLLAMA_TOOLS_STREAM = (
    b'data: {"id":"chatcmpl-763","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2","system_fingerprint":"fp_ollama",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_rcja46yu","type":"function",'
    b'"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-763","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2","system_fingerprint":"fp_ollama",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_x81kq2mz","type":"function",'
    b'"function":{"name":"get_time","arguments":"{\\"tz\\":\\"CET\\"}"}}]},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-763","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2","system_fingerprint":"fp_ollama",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)

# NIM (MiniMax M2.7): the full tool name repeated in every chunk.
NIM_REPEATED_TOOL_NAME_STREAM = (
    b'data: {"id":"nim-tool-1","object":"chat.completion.chunk","created":1760000000,"model":"minimaxai/minimax-m2.7",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_0","type":"function",'
    b'"function":{"name":"read_file","arguments":""}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"nim-tool-1","object":"chat.completion.chunk","created":1760000000,"model":"minimaxai/minimax-m2.7",'
    b'"choices":[{"index":0,"delta":{"role":null,"content":null,"tool_calls":[{"index":0,"id":"call_0","type":"function",'
    b'"function":{"name":"read_file","arguments":"{\\"path\\":"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"nim-tool-1","object":"chat.completion.chunk","created":1760000000,"model":"minimaxai/minimax-m2.7",'
    b'"choices":[{"index":0,"delta":{"role":null,"content":null,"tool_calls":[{"index":0,"id":"call_0","type":"function",'
    b'"function":{"name":"read_file","arguments":"\\"a.txt\\"}"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"nim-tool-1","object":"chat.completion.chunk","created":1760000000,"model":"minimaxai/minimax-m2.7",'
    b'"choices":[{"index":0,"delta":{"role":null,"content":null},"logprobs":null,"finish_reason":"tool_calls"}]}\n\n'
    b"data: [DONE]\n\n"
)

# DeepSeek-style thinking: reasoning_content flows while content is null, then the answer.
REASONING_PIECES = ["Okay", ", the user", " says hi", " — 挨拶"]
DEEPSEEK_REASONING_STREAM = b"".join(
    [nim_chunk(None, role="assistant")]
    + [
        nim_chunk(None).replace(b'"reasoning_content":null', b'"reasoning_content":' + json.dumps(piece, ensure_ascii=False).encode())
        for piece in REASONING_PIECES
    ]
    + [nim_chunk("Hey! 👋"), nim_chunk(None, finish_reason="stop"), b"data: [DONE]\n\n"]
)

# vLLM (command-a): the first tool delta names the call "", a later one names it.
VLLM_LATE_TOOL_NAME_STREAM = (
    b'data: {"id":"chatcmpl-v1","object":"chat.completion.chunk","created":1750000000,"model":"command-a",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":null},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-v1","object":"chat.completion.chunk","created":1750000000,"model":"command-a",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"chatcmpl-tool-8f1c","type":"function",'
    b'"function":{"name":"","arguments":""}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-v1","object":"chat.completion.chunk","created":1750000000,"model":"command-a",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-v1","object":"chat.completion.chunk","created":1750000000,"model":"command-a",'
    b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-v1","object":"chat.completion.chunk","created":1750000000,"model":"command-a",'
    b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}\n\n'
    b"data: [DONE]\n\n"
)

# Every recorded stream, for property tests.
ALL_STREAMS = {
    "nim": NIM_STREAM,
    "openai": OPENAI_STREAM,
    "tgi": TGI_STREAM,
    "exo": EXO_STREAM,
    "ollama_tools": OLLAMA_TOOLS_STREAM,
    "nim_repeated_tool_name": NIM_REPEATED_TOOL_NAME_STREAM,
    "deepseek_reasoning": DEEPSEEK_REASONING_STREAM,
    "vllm_late_tool_name": VLLM_LATE_TOOL_NAME_STREAM,
    "nim_crlf": NIM_STREAM.replace(b"\n", b"\r\n"),
    "nim_cr": NIM_STREAM.replace(b"\n", b"\r"),
}
