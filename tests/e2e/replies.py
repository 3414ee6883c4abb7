"""Upstream reply shapes for test_replies_e2e.py: errors, non-stream bodies, model lists, usage streams.

Each shape is the bytes one real "OpenAI-compatible" upstream sends (see
../../../shared/quirks.md for the sources), kept here as data so the tests read
as "this in, exactly that out". Streams are built from dicts with `sse()`, in
the key order and `data:` spacing the upstream uses; nothing here imports the
code under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.upstreams import NIM_422_DETAIL, NIM_422_PROBLEM

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
CREATED = 1754000000
MESSAGES = [{"role": "user", "content": "Hi"}]

ALIAS = "gpt-4o"
TARGET = "meta/llama-3.1-70b-instruct"


def compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse(obj: Any, *, space: bool = True) -> bytes:
    """One SSE event as the upstream writes it (`data: ` or TGI's `data:`)."""
    return (b"data: " if space else b"data:") + compact(obj) + b"\n\n"


# --------------------------------------------------------------------------- HTTP errors


@dataclass(frozen=True)
class ErrorShape:
    """A non-2xx reply as an upstream sends it, and the OpenAI error the client must get."""

    name: str
    status: int
    content_type: str | None
    body: bytes
    expected: dict[str, Any]  # the `error` object the client must receive, exactly
    sdk_error: str  # the openai.APIStatusError subclass the SDK must raise
    # Members the client must receive beside `error`, before it: a problem+json's own
    # (NVIDIA's ChatNVIDIA reads them), as the upstream sent them.
    beside: dict[str, Any] = field(default_factory=dict)


_NIM_422 = compact(NIM_422_PROBLEM)
_NIM_500 = compact(
    {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "System role not supported",
        "instance": "/v2/nvcf/pexec/functions/1136f83f-32b8-4e2a-8a83-0d1a4d0a3e6c",
        "requestId": "6f1c9a2e-8d0b-4c55-b5a1-3a8b1f1e9d0c",
    }
)
VLLM_MESSAGE = (
    "This model's maximum context length is 2048 tokens. However, you requested 4097 tokens "
    "(97 in the messages, 4000 in the completion). Please reduce the length of the messages or completion."
)
GEMINI_MESSAGE = 'Invalid JSON payload received. Unknown name "web_search_options": Cannot find field.'
GEMINI_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"description": GEMINI_MESSAGE}],
    }
]
TGI_MESSAGE = (
    "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
    "Given: 4000 `inputs` tokens and 200 `max_new_tokens`"
)
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
ENVOY_503 = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"

ERROR_SHAPES = [
    ErrorShape(
        "nim_422_data_prefix",
        422,
        "application/json",
        b"data:" + _NIM_422,
        {"message": NIM_422_DETAIL, "type": "invalid_request_error", "param": None, "code": None},
        "UnprocessableEntityError",
        NIM_422_PROBLEM,
    ),
    ErrorShape(
        "nim_422_problem_json",
        422,
        "application/problem+json",
        _NIM_422,
        {"message": NIM_422_DETAIL, "type": "invalid_request_error", "param": None, "code": None},
        "UnprocessableEntityError",
        NIM_422_PROBLEM,
    ),
    ErrorShape(
        "nim_500_problem",
        500,
        "application/json",
        _NIM_500,
        {"message": "System role not supported", "type": "server_error", "param": None, "code": None},
        "InternalServerError",
        json.loads(_NIM_500),
    ),
    ErrorShape(
        "vllm_unwrapped",
        400,
        "application/json",
        compact({"object": "error", "message": VLLM_MESSAGE, "type": "BadRequestError", "param": None, "code": 400}),
        {"message": VLLM_MESSAGE, "type": "BadRequestError", "param": None, "code": 400},
        "BadRequestError",
    ),
    ErrorShape(
        "gemini_array",
        400,
        "application/json",
        compact(
            [
                {
                    "error": {
                        "code": 400,
                        "message": GEMINI_MESSAGE,
                        "status": "INVALID_ARGUMENT",
                        "details": GEMINI_DETAILS,
                    }
                }
            ]
        ),
        {
            "message": GEMINI_MESSAGE,
            "type": "invalid_request_error",
            "param": None,
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "details": GEMINI_DETAILS,
        },
        "BadRequestError",
    ),
    ErrorShape(
        "tgi_string_error",
        422,
        "application/json",
        compact({"error": TGI_MESSAGE, "error_type": "validation"}),
        {"message": TGI_MESSAGE, "type": "validation", "param": None, "code": None},
        "UnprocessableEntityError",
    ),
    ErrorShape(
        "nginx_html_502",
        502,
        "text/html",
        NGINX_502,
        {"message": "502 Bad Gateway nginx/1.25.3", "type": "server_error", "param": None, "code": None},
        "InternalServerError",
    ),
    ErrorShape(
        "plain_text_503",
        503,
        "text/plain",
        ENVOY_503,
        {"message": ENVOY_503.decode(), "type": "server_error", "param": None, "code": None},
        "InternalServerError",
    ),
    ErrorShape(
        "empty_504",
        504,
        None,
        b"",
        {"message": "Gateway Timeout", "type": "server_error", "param": None, "code": None},
        "InternalServerError",
    ),
]

# Already OpenAI's shape: must reach the client byte for byte (its own spacing and all).
OPENAI_ERRORS = [
    (
        429,
        "RateLimitError",
        b'{\n    "error": {\n        "message": "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): '
        b'Limit 30000, Used 30000, Requested 120.",\n        "type": "tokens",\n        "param": null,\n'
        b'        "code": "rate_limit_exceeded"\n    }\n}\n',
    ),
    (
        400,
        "BadRequestError",
        # NIM leaking its vLLM backend's (already wrapped) error.
        b'{"error":{"message":"\\"auto\\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set",'
        b'"type":"BadRequestError","param":null,"code":400}}',
    ),
]


# --------------------------------------------------------------------------- errors inside a stream

TGI_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TGI_STREAM_ERROR = "Request failed during generation: Server error: CUDA out of memory. Tried to allocate 2.00 GiB"


def tgi_chunk(content: str) -> dict[str, Any]:
    """TGI before PR #3075: empty id, role on every chunk, usage null."""
    return {
        "object": "chat.completion.chunk",
        "id": "",
        "created": CREATED,
        "model": TGI_MODEL,
        "system_fingerprint": "3.0.1-sha-bb9095a",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
        "usage": None,
    }


def tgi_error_stream(done: bool) -> list[bytes]:
    out = [
        sse(tgi_chunk("Hello"), space=False),
        sse(tgi_chunk(" world"), space=False),
        sse({"error": TGI_STREAM_ERROR, "error_type": "generation"}, space=False),
    ]
    return out + [b"data:[DONE]\n\n"] if done else out


LLAMA_ID = "chatcmpl-llama1"
LLAMA_MODEL = "qwen2.5-7b-instruct"
LLAMA_CONTEXT_ERROR = "the request exceeds the available context size, try increasing it"


def llama_chunk(delta: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's key order: choices first, then created, id, model, system_fingerprint, object."""
    return {
        "choices": [{"finish_reason": None, "index": 0, "delta": delta}],
        "created": CREATED,
        "id": LLAMA_ID,
        "model": LLAMA_MODEL,
        "system_fingerprint": "b6100-5c0eb5ef",
        "object": "chat.completion.chunk",
    }


def llama_error_stream() -> list[bytes]:
    return [
        sse(llama_chunk({"role": "assistant", "content": "Hello"})),
        sse(llama_chunk({"content": " world"})),
        b"error: "
        + compact({"code": 400, "message": LLAMA_CONTEXT_ERROR, "type": "invalid_request_error"})
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]


# --------------------------------------------------------------------------- non-stream completions

NIM_COMPLETION = {
    "id": "chatcmpl-5d7c3c1e9a",
    "object": "chat.completion",
    "created": CREATED,
    "model": "meta/llama-3.1-8b-instruct",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!", "reasoning_content": None, "tool_calls": None},
            "logprobs": None,
            "finish_reason": "stop",
            "matched_stop": 128009,
        }
    ],
    "usage": {"prompt_tokens": 12, "total_tokens": 15, "completion_tokens": 3, "prompt_tokens_details": None},
    "system_fingerprint": None,
}

TGI_TOOL_ARGUMENTS = {"location": "Paris", "unit": "celsius"}
TGI_TOOL_COMPLETION = {
    "object": "chat.completion",
    "id": "",
    "created": CREATED,
    "model": TGI_MODEL,
    "system_fingerprint": "3.0.1-sha-bb9095a",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "0",
                        "type": "function",
                        "function": {"description": None, "name": "get_weather", "arguments": TGI_TOOL_ARGUMENTS},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 300, "completion_tokens": 25, "total_tokens": 325},
}

PREFIXED_COMPLETION = {
    "id": "chatcmpl-ds1",
    "object": "chat.completion",
    "created": CREATED,
    "model": "deepseek-chat",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}
# DeepSeek under load (blank lines before the JSON) and NIM's `data:` prefix, together.
PREFIXED_BODY = b"\n\n\ndata: " + compact(PREFIXED_COMPLETION) + b"\n"

NULL_CONTENT_COMPLETION = {
    "id": "chatcmpl-null1",
    "object": "chat.completion",
    "created": CREATED,
    "model": "local-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4},
}


# --------------------------------------------------------------------------- /v1/models

EXO_MODELS = [
    {"id": "llama-3.2-1b", "object": "model", "owned_by": "exo", "ready": True},
    {"id": "llama-3.1-8b", "object": "model", "owned_by": "exo", "ready": False},
]


# --------------------------------------------------------------------------- streams for usage and aliases

STREAM_ID = "chatcmpl-usage1"
USAGE_MODEL = "meta/llama-3.1-8b-instruct"
PIECES = ["Hel", "lo", "!"]


def usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": completion_tokens, "total_tokens": 10 + completion_tokens}


def openai_chunk(
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    model: str = USAGE_MODEL,
    **extra: Any,
) -> dict[str, Any]:
    chunk = {
        "id": STREAM_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    chunk.update(extra)
    return chunk


def deltas() -> list[tuple[dict[str, Any], str | None]]:
    """role chunk, three content chunks, finish chunk."""
    return [
        ({"role": "assistant", "content": ""}, None),
        *(({"content": p}, None) for p in PIECES),
        ({}, "stop"),
    ]


def nim_usage_stream() -> list[bytes]:
    """NIM (SGLang) with include_usage: usage on every chunk, growing."""
    return [sse(openai_chunk(d, f, usage=usage(i))) for i, (d, f) in enumerate(deltas())] + [b"data: [DONE]\n\n"]


def last_chunk_usage_stream() -> list[bytes]:
    """Usage only on the finishing content chunk (no choices:[] chunk of its own)."""
    out = []
    items = deltas()
    for i, (d, f) in enumerate(items):
        extra = {"usage": usage(3)} if i == len(items) - 1 else {}
        out.append(sse(openai_chunk(d, f, **extra)))
    return out + [b"data: [DONE]\n\n"]


def groq_usage_stream() -> list[bytes]:
    """Groq: `x_groq.id` on the first chunk, `x_groq.usage` on the finishing one."""
    out = []
    items = deltas()
    for i, (d, f) in enumerate(items):
        extra: dict[str, Any] = {"system_fingerprint": "fp_groq1"}
        if i == 0:
            extra["x_groq"] = {"id": "req_01abc"}
        if i == len(items) - 1:
            extra["x_groq"] = {"id": "req_01abc", "usage": {**usage(3), "queue_time": 0.01, "total_time": 0.02}}
        out.append(sse(openai_chunk(d, f, **extra)))
    return out + [b"data: [DONE]\n\n"]


def openai_usage_stream() -> list[bytes]:
    """OpenAI's own shape: `usage` only on a final choices:[] chunk."""
    body = [sse(openai_chunk(d, f)) for d, f in deltas()]
    final = {k: v for k, v in openai_chunk({}).items() if k != "choices"}
    return body + [sse({**final, "choices": [], "usage": usage(3)}), b"data: [DONE]\n\n"]


def llama_usage_chunk_stream() -> list[bytes]:
    """llama.cpp after PR #15444: a choices:[] usage chunk even without include_usage."""
    body = [sse(openai_chunk(d, f, timings={"predicted_n": 3})) for d, f in deltas()]
    final = {
        "choices": [],
        "created": CREATED,
        "id": STREAM_ID,
        "model": USAGE_MODEL,
        "system_fingerprint": "b6100-5c0eb5ef",
        "object": "chat.completion.chunk",
        "usage": usage(3),
        "timings": {"predicted_n": 3},
    }
    return body + [sse(final), b"data: [DONE]\n\n"]


def target_stream() -> list[bytes]:
    """A stream as the aliased upstream model answers it, naming itself."""
    return [sse(openai_chunk(d, f, model=TARGET)) for d, f in deltas()] + [b"data: [DONE]\n\n"]


def target_completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-target1",
        "object": "chat.completion",
        "created": CREATED,
        "model": TARGET,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage(2),
    }
