"""One recorded reply per upstream deviation in ../shared/quirks.md section 2.

Each `Fixture` is what one "OpenAI-compatible" upstream writes (status,
headers, the body as the byte chunks it sends), the request a client makes to
get it, and what a client must receive once the addon has repaired it: the
text, the reasoning text, the tool calls (name and exact arguments, in
order), the finish_reason, the usage, or the error (status and message).

The bytes are written by hand from the catalogue's raw examples; where the
catalogue cuts bytes ("…"), the rest follows the same upstream's documented
shape. Nothing here imports the code under test, so a wrong rewrite fails the
tests that replay these fixtures rather than being copied into them.

Used by tests/e2e/test_upstreams_e2e.py (raw bytes through mitmdump),
tests/e2e/test_python_clients_e2e.py (openai, langchain-openai) and the Node
client tests. `FIXTURES` maps each name to its fixture; `Fixture.request.body()`
is the JSON the client sends; `Fixture.expected.as_dict()` is plain JSON.

Each fixture is built by a function whose docstring cites its quirks.md row
and the row's public source; the docstring is kept as `Fixture.doc`, and the
module attribute of that name is the fixture (`upstreams.tgi_axum_stream`).

The last section reads what a client got: `assemble_stream(body)` and
`assemble_completion(obj)` give an `Expected` to compare with the fixture's,
and `stream_problems`, `completion_problems`, `error_problems` and
`models_problems` list every way a reply differs from OpenAI's own shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
SSE = "text/event-stream"
JSON = "application/json"
MESSAGES = ({"role": "user", "content": "Hi"},)


def compact(obj: Any) -> bytes:
    """JSON as the upstreams write it: no spaces, UTF-8 unescaped, keys in the order given."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse(obj: Any, *, space: bool = True) -> bytes:
    """One SSE event: `data: {json}\\n\\n`, or TGI's and DashScope's `data:{json}\\n\\n`."""
    return (b"data: " if space else b"data:") + compact(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"
DONE_NO_SPACE = b"data:[DONE]\n\n"


# --------------------------------------------------------------------------- tools offered


def _tool(name: str, description: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {key: {"type": kind} for key, kind in properties.items()},
                "required": list(properties),
            },
        },
    }


TOOLS: dict[str, dict[str, Any]] = {
    t["function"]["name"]: t
    for t in (
        _tool("get_weather", "The current weather in a city.", city="string"),
        _tool("get_time", "The current time in a time zone.", tz="string"),
        _tool("read_file", "Read a file of the project.", path="string"),
        _tool("file_write", "Write content to a file.", filePath="string", content="string"),
        _tool("count_letters", "Count a letter in a word.", word="string", letter="string"),
    )
}


# --------------------------------------------------------------------------- the dataclasses


@dataclass(frozen=True)
class UpstreamReply:
    """What the upstream writes: status, headers (content-type first), body chunks in order."""

    status: int
    content_type: str | None
    chunks: tuple[bytes, ...]
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def all_headers(self) -> list[tuple[str, str]]:
        ct = [] if self.content_type is None else [("Content-Type", self.content_type)]
        return ct + list(self.headers)


@dataclass(frozen=True)
class ClientRequest:
    """What the client sends. `tools` names entries of TOOLS; `extra` adds top-level keys."""

    model: str
    stream: bool = True
    tools: tuple[str, ...] = ()
    include_usage: bool = False
    method: str = "POST"
    path: str = CHAT_PATH
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def is_chat(self) -> bool:
        return self.method == "POST" and self.path == CHAT_PATH

    def tool_params(self) -> list[dict[str, Any]]:
        return [TOOLS[name] for name in self.tools]

    def body(self) -> dict[str, Any] | None:
        """The JSON body (None for a GET)."""
        if not self.is_chat:
            return None
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in MESSAGES]}
        if self.stream:
            body["stream"] = True
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if self.tools:
            body["tools"] = self.tool_params()
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # the exact JSON text the client must end up with


@dataclass(frozen=True)
class ExpectedError:
    status: int  # the HTTP status the client sees (200 for an error inside a stream)
    message: str


@dataclass(frozen=True)
class Expected:
    """What a client must receive, assembled (all of the stream, or the whole body)."""

    text: str = ""
    reasoning: str = ""  # reasoning_content (DeepSeek, NIM) or reasoning (vLLM, Ollama)
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: ExpectedError | None = None
    models: tuple[str, ...] = ()  # for GET /v1/models: the model ids, in order
    # Request keys the addon must have removed before the upstream saw them.
    removed_params: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fixture:
    name: str
    upstream: str  # the quirks.md row's upstream, as named there
    doc: str  # the building function's docstring: the quirk and its sources
    reply: UpstreamReply
    request: ClientRequest
    expected: Expected

    @property
    def is_stream(self) -> bool:
        return self.request.is_chat and self.request.stream and self.reply.status < 400

    @property
    def has_tools(self) -> bool:
        return bool(self.expected.tool_calls)

    def __repr__(self) -> str:  # pytest ids and failure messages
        return f"Fixture({self.name})"


FIXTURES: dict[str, Fixture] = {}


def fixture(upstream: str) -> Callable[[Callable[[], tuple[UpstreamReply, ClientRequest, Expected]]], Fixture]:
    """Registers the fixture a function builds, named after the function, documented by its docstring."""

    def register(build: Callable[[], tuple[UpstreamReply, ClientRequest, Expected]]) -> Fixture:
        reply, request, expected = build()
        doc = " ".join((build.__doc__ or "").split())
        assert doc, f"{build.__name__}: cite the quirks.md row in a docstring"
        made = Fixture(build.__name__, upstream, doc, reply, request, expected)
        assert made.name not in FIXTURES
        FIXTURES[made.name] = made
        return made

    return register


def stream_reply(*chunks: bytes, content_type: str | None = SSE, status: int = 200) -> UpstreamReply:
    return UpstreamReply(status, content_type, tuple(chunks))


def split(data: bytes, *at: bytes) -> list[bytes]:
    """`data` cut just before each marker (the first occurrence after the previous cut)."""
    pieces, start = [], 0
    for marker in at:
        cut = data.index(marker, start + 1)
        pieces.append(data[start:cut])
        start = cut
    return [*pieces, data[start:]]


# =========================================================================== NVIDIA NIM

NIM_ID = "8f20d6699e194a0abed38c671384d32d"
NIM_QWEN = "qwen/qwen3-next-80b-a3b-instruct"


def nim_chunk(delta: dict[str, Any], *, finish_reason: str | None = None, usage: Any = None,
              id: str = NIM_ID, model: str = NIM_QWEN) -> dict[str, Any]:
    """A chunk in the key order NIM's SGLang backend writes, every absent field as null."""
    full = {"role": None, "content": None, "reasoning_content": None, "tool_calls": None, **delta}
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1754000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": full,
                "logprobs": None,
                "finish_reason": finish_reason,
                "matched_stop": 151645 if finish_reason == "stop" else None,
            }
        ],
        "usage": usage,
    }


NIM_TEXT = ["Tabs", " or", " spaces", "? ", "Spaces — ", "naïve café 東京 🚀"]


@fixture("NVIDIA NIM (SGLang-backed model)")
def nim_null_fields_stream():
    """quirks.md §2 "NIM (SGLang-backed model)": the first chunk says role "assistant"
    with content:null, later ones role:null, and reasoning_content, tool_calls, usage
    and matched_stop are null in every chunk. Source: Rust test fixture
    `test_nvidia_misc`, kittors/CliRelay #658, pipecat NimLLMService."""
    chunks = [sse(nim_chunk({"role": "assistant"}))]
    chunks += [sse(nim_chunk({"content": piece})) for piece in NIM_TEXT]
    chunks += [sse(nim_chunk({}, finish_reason="stop")), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest(NIM_QWEN),
        Expected(text="".join(NIM_TEXT), finish_reason="stop"),
    )


def _nim_usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 9, "total_tokens": 9 + completion_tokens, "completion_tokens": completion_tokens}


@fixture("NVIDIA NIM (SGLang-backed model)")
def nim_usage_on_every_chunk():
    """quirks.md §2 "NIM (SGLang-backed model)": with include_usage, usage arrives on
    every chunk (running totals) instead of once in a final `choices:[]` chunk.
    Source: kittors/CliRelay #658; pipecat NimLLMService."""
    pieces = ["Four", " tokens", " of", " text"]
    chunks = [sse(nim_chunk({"role": "assistant"}, usage=_nim_usage(0)))]
    chunks += [sse(nim_chunk({"content": p}, usage=_nim_usage(i + 1))) for i, p in enumerate(pieces)]
    chunks += [sse(nim_chunk({}, finish_reason="stop", usage=_nim_usage(4))), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest(NIM_QWEN, include_usage=True),
        Expected(text="Four tokens of text", finish_reason="stop", usage=_nim_usage(4)),
    )


MINIMAX = "minimaxai/minimax-m2.7"


@fixture("NVIDIA NIM (MiniMax M2.7)")
def nim_repeated_tool_name():
    """quirks.md §2 "NIM (MiniMax M2.7)": the full tool name (and id and type) is
    repeated in every tool-call chunk, so `+=` accumulators build `read_fileread_file`.
    Source: NousResearch/hermes-agent #12233, PR #12230."""

    def call(index: int, call_id: str, arguments: str) -> dict[str, Any]:
        return {"index": index, "id": call_id, "type": "function",
                "function": {"name": "read_file", "arguments": arguments}}

    def chunk(c: dict[str, Any] | None = None, **kw: Any) -> bytes:
        delta = {"tool_calls": [c]} if c else {}
        return sse(nim_chunk(delta, id="chatcmpl-nim-7c1d", model=MINIMAX, **kw))

    chunks = [
        sse(nim_chunk({"role": "assistant", "tool_calls": [call(0, "call_function_a1", "")]},
                      id="chatcmpl-nim-7c1d", model=MINIMAX)),
        chunk(call(0, "call_function_a1", '{"path": ')),
        chunk(call(0, "call_function_a1", '"README.md"}')),
        chunk(call(1, "call_function_b2", "")),
        chunk(call(1, "call_function_b2", '{"path": "docs/quirks.md"}')),
        chunk(finish_reason="tool_calls"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest(MINIMAX, tools=("read_file",)),
        Expected(
            tool_calls=(ToolCall("read_file", '{"path": "README.md"}'),
                        ToolCall("read_file", '{"path": "docs/quirks.md"}')),
            finish_reason="tool_calls",
        ),
    )


NIM_422_DETAIL = "body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)"
# NIM's problem+json body for a parameter it rejects (BerriAI/litellm #4558).
NIM_422_PROBLEM = {
    "type": "urn:inference-service:problem-details:unprocessable-entity",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": NIM_422_DETAIL,
    "instance": "/v2/nvcf/pexec/functions/1136f83f-32b8-4e2a-8a83-0d1a4d0a3e6c",
    "requestId": "2230b3a0-5f55-4bb5-9a8c-1f3a0bd1d2a1",
}


@fixture("NVIDIA NIM")
def nim_problem_json_422():
    """quirks.md §2 "NVIDIA NIM": a problem+json error whose text starts with `data:`
    even on a 422. Source: BerriAI/litellm #4558 (the body as LiteLLM quoted it);
    langchain-nvidia `_common.py` strips the prefix with `[5:]`. openai-node shows
    `422 data:{…}`; the AI SDK only the statusText."""
    return (
        UpstreamReply(422, "application/problem+json", (b"data:" + compact(NIM_422_PROBLEM) + b"\n\n",)),
        ClientRequest("meta/llama-3.1-8b-instruct", extra=(("frequency_penalty", 0.5),)),
        Expected(error=ExpectedError(422, NIM_422_DETAIL)),
    )


NIM_AUTO_TOOL_MESSAGE = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


@fixture("NVIDIA NIM")
def nim_backend_error_leak():
    """quirks.md §2 "NIM": a backend (vLLM) error leaks through, already in OpenAI's
    shape except `type` is a Python class name and `code` an integer. Source:
    hidenobunagai/nvidia-nim-provider #2. Nothing to repair: it must arrive as sent."""
    body = compact({"error": {"message": NIM_AUTO_TOOL_MESSAGE, "type": "BadRequestError", "param": None, "code": 400}})
    return (
        UpstreamReply(400, JSON, (body,)),
        ClientRequest("meta/llama-3.1-8b-instruct", tools=("get_weather",), extra=(("tool_choice", "auto"),)),
        Expected(error=ExpectedError(400, NIM_AUTO_TOOL_MESSAGE)),
    )


NIM_LLAMA = "meta/llama-3.1-8b-instruct"


@fixture("NVIDIA NIM")
def nim_stream_options_without_stream():
    """quirks.md §2 "NIM" strict validation: `400 Validation: The 'stream_options' field
    is only allowed when 'stream' is set to true.` The addon removes stream_options
    from a non-stream request, so NIM answers; this is its non-stream reply, nulls
    and matched_stop included. Source: kittors/CliRelay PR #658 (the 400);
    the reply's shape from the NIM (SGLang-backed model) row."""
    completion = {
        "id": "chatcmpl-nim-0b5e",
        "object": "chat.completion",
        "created": 1754000100,
        "model": NIM_LLAMA,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! How can I help?", "reasoning_content": None, "tool_calls": None},
                "logprobs": None,
                "finish_reason": "stop",
                "matched_stop": 128009,
            }
        ],
        "usage": {"prompt_tokens": 11, "total_tokens": 18, "completion_tokens": 7},
    }
    return (
        UpstreamReply(200, JSON, (compact(completion),)),
        ClientRequest(NIM_LLAMA, stream=False, extra=(("stream_options", {"include_usage": True}),)),
        Expected(
            text="Hi! How can I help?",
            finish_reason="stop",
            usage={"prompt_tokens": 11, "total_tokens": 18, "completion_tokens": 7},
            removed_params=("stream_options",),
        ),
    )


# --------------------------------------------------------------------------- NIM: reasoning inside content

NIM_R1 = "deepseek-ai/deepseek-r1"
R1_REASONING = "\nOkay, the user says hi. I should greet back.\n"
R1_TEXT = "\n\nHello! How can I help you today?"


@fixture("NVIDIA NIM (DeepSeek-R1)")
def nim_think_tags_in_content():
    """agents-and-nim-2026.md "How reasoning is switched on": DeepSeek-R1 on NIM writes
    its reasoning inside `content` as `<think>…</think>` (lobehub/lobehub #5868;
    Nemotron on NIM too, danny-avila/LibreChat #8410), one token per chunk, so the
    tags arrive cut (`<th` + `ink>`). Clients show the tags and the reasoning as
    the answer; the addon sends the block as reasoning_content."""
    pieces = ["<th", "ink>", "\nOkay", ", the user says hi.", " I should greet back.\n</", "think>",
              "\n\nHello!", " How can I help you", " today?"]
    chunks = [sse(nim_chunk({"role": "assistant"}, model=NIM_R1))]
    chunks += [sse(nim_chunk({"content": piece}, model=NIM_R1)) for piece in pieces]
    chunks += [sse(nim_chunk({}, finish_reason="stop", model=NIM_R1)), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest(NIM_R1),
        Expected(text=R1_TEXT, reasoning=R1_REASONING, finish_reason="stop"),
    )


NIM_ULTRA = "nvidia/llama-3.1-nemotron-ultra-253b-v1"


@fixture("NVIDIA NIM (Nemotron, detailed thinking on)")
def nim_think_tags_in_content_nonstream():
    """agents-and-nim-2026.md: Nemotron-Ultra with the system prompt "detailed thinking
    on" answers with `<think>…</think>` at the start of `content`
    (danny-avila/LibreChat #8410; NIM docs, reasoning-model.html); a whole reply
    here. The addon sends the block as the message's reasoning_content."""
    completion = {
        "id": "chatcmpl-nim-5d1c",
        "object": "chat.completion",
        "created": 1754000200,
        "model": NIM_ULTRA,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "<think>" + R1_REASONING + "</think>" + R1_TEXT,
                            "reasoning_content": None, "tool_calls": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "total_tokens": 40, "completion_tokens": 26},
    }
    return (
        UpstreamReply(200, JSON, (compact(completion),)),
        ClientRequest(NIM_ULTRA, stream=False),
        Expected(text=R1_TEXT, reasoning=R1_REASONING, finish_reason="stop",
                 usage={"prompt_tokens": 14, "total_tokens": 40, "completion_tokens": 26}),
    )
# --------------------------------------------------------------------------- NIM's error shapes
#
# Each reaches the client as OpenAI's envelope with the status a client should act
# on (errors.py `error_reply`); the rules go by the body, so these replay through
# any profile. Where a report gives the text but not the body around it, the
# docstring says what is inferred.

NIM_STRICT_MESSAGE = "Failed to validate model spec: Unknown parameter: function.strict"


@fixture("NVIDIA NIM")
def nim_function_strict_401():
    """A 401 that is no auth failure: NIM's answer to `tools[].function.strict`,
    `{"error":{"message":"Failed to validate model spec: Unknown parameter: function.strict",
    "type":"invalid_request_error","param":"function.strict","code":"invalid_value"}}`.
    Source: charmbracelet/crush #2472. A client must not conclude its key is bad: 400."""
    body = compact({"error": {"message": NIM_STRICT_MESSAGE, "type": "invalid_request_error",
                              "param": "function.strict", "code": "invalid_value"}})
    return (
        UpstreamReply(401, JSON, (body,)),
        ClientRequest(NIM_LLAMA, stream=False, tools=("get_weather",)),
        Expected(error=ExpectedError(400, NIM_STRICT_MESSAGE)),
    )


NIM_EXHAUSTED = "ResourceExhausted: Worker local total request limit reached (32/32)"


@fixture("NVIDIA NIM")
def nim_resource_exhausted():
    """NIM's per-model worker cap, shared by every key: "ResourceExhausted: Worker local
    total request limit reached (32/32)" (anomalyco/opencode #34613, #35620; QuantumNous/new-api
    #6619). Inferred: the status (500) and the `{"error":{"message"}}` around the text
    (opencode's AI SDK shows `error.message`, which it reads only from that shape). It is a
    rate limit: 429, so clients back off and retry."""
    return (
        UpstreamReply(500, JSON, (compact({"error": {"message": NIM_EXHAUSTED}}),)),
        ClientRequest(NIM_LLAMA, stream=False),
        Expected(error=ExpectedError(429, NIM_EXHAUSTED)),
    )


NIM_NOT_FOUND = "Function '23d4c1a0-8b1e-4f6a-9d3c-5e2f1a7b9c04': Not found for account 'Xq9sB3d2kP0mV7wL1tR5yN8uE4hJ6gF2aZ0c'"


@fixture("NVIDIA NIM")
def nim_function_not_found_404():
    """A removed model: `{"status":404,"title":"Not Found","detail":"Function '…': Not found
    for account '…'"}` (Alishahryar1/free-claude-code #1021). OpenAI says `model_not_found`
    for a model it does not have; the problem's members stay for NVIDIA's own client."""
    problem = {"status": 404, "title": "Not Found", "detail": NIM_NOT_FOUND}
    return (
        UpstreamReply(404, "application/problem+json", (compact(problem),)),
        ClientRequest("meta/llama2-70b", stream=False),
        Expected(error=ExpectedError(404, NIM_NOT_FOUND)),
    )


NIM_GONE = "Function 'f3a1c9e2-7d4b-4e0a-b6c8-2a9d5e1f0b37': Gone"


@fixture("NVIDIA NIM")
def nim_function_gone_410():
    """A retired model answered 410 Gone (can1357/oh-my-pi #2299). Inferred: the body, in the
    404's problem shape. To a client it is a model it cannot have: 404 `model_not_found`."""
    problem = {"status": 410, "title": "Gone", "detail": NIM_GONE}
    return (
        UpstreamReply(410, "application/problem+json", (compact(problem),)),
        ClientRequest("nvidia/nemotron-4-340b-instruct", stream=False),
        Expected(error=ExpectedError(404, NIM_GONE)),
    )


NIM_DEGRADED = "Function id '9f1c2b7e-3a5d-4c8e-b0f6-7d2e4a1c9b53': DEGRADED function cannot be invoked"


@fixture("NVIDIA NIM")
def nim_degraded_function():
    """`{"status":400,"title":"Bad Request","detail":"Function id '…': DEGRADED function cannot
    be invoked"}` (farion1231/cc-switch #3536; diegosouzapw/OmniRoute #12685): a 400 although
    the request is fine; the server is at fault, so 503, which clients retry later."""
    problem = {"status": 400, "title": "Bad Request", "detail": NIM_DEGRADED}
    return (
        UpstreamReply(400, "application/problem+json", (compact(problem),)),
        ClientRequest(NIM_LLAMA, stream=False),
        Expected(error=ExpectedError(503, NIM_DEGRADED)),
    )


NIM_RATE_LIMIT_PROBLEM = {"status": 429, "title": "Too Many Requests"}


@fixture("NVIDIA NIM")
def nim_rate_limit_429():
    """The hosted free tier's 40 requests a minute per key: `{"status":429,"title":"Too Many
    Requests"}` (NousResearch/hermes-agent #69802; free-claude-code #30 quotes it parsed). No
    `detail`: the message is the title."""
    return (
        UpstreamReply(429, JSON, (compact(NIM_RATE_LIMIT_PROBLEM),)),
        ClientRequest(NIM_LLAMA, stream=False),
        Expected(error=ExpectedError(429, "Too Many Requests")),
    )


NIM_FLAT_MESSAGE = "Validation: Unsupported parameter(s): `prompt_cache_key`"


@fixture("NVIDIA NIM")
def nim_flat_error():
    """A validation error with no `error` wrapper: `{"message":"Validation: Unsupported
    parameter(s): `prompt_cache_key`","type":"Bad Request","code":400}` (ILoveBingLu/CipherTalk
    #353; free-claude-code #127 the same for reasoning_budget). openai-node says "400 status
    code (no body)" for a body without `error`."""
    body = compact({"message": NIM_FLAT_MESSAGE, "type": "Bad Request", "code": 400})
    return (
        UpstreamReply(400, JSON, (body,)),
        ClientRequest(NIM_LLAMA, stream=False, extra=(("prompt_cache_key", "main"),)),
        Expected(error=ExpectedError(400, NIM_FLAT_MESSAGE)),
    )


NIM_EXTRA_FORBIDDEN = ("[{'type': 'extra_forbidden', 'loc': ('body', 'prompt_cache_key'), "
                       "'msg': 'Extra inputs are not permitted', 'input': 'main'}]")


@fixture("NVIDIA NIM")
def nim_error_string():
    """`error` as a string holding pydantic's error list: `{"error": "[{'type':
    'extra_forbidden', 'loc': ('body', 'prompt_cache_key'), ...}]"}` (sipeed/picoclaw #1019).
    Inferred: the status (400, as NIM's other validation errors)."""
    return (
        UpstreamReply(400, JSON, (compact({"error": NIM_EXTRA_FORBIDDEN}),)),
        ClientRequest(NIM_LLAMA, stream=False, extra=(("prompt_cache_key", "main"),)),
        Expected(error=ExpectedError(400, NIM_EXTRA_FORBIDDEN)),
    )


NIM_PENALTIES = ("body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden)\n"
                 "body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)")
GEMMA = "google/gemma-2-2b-it"


@fixture("NVIDIA NIM")
def nim_penalties_422():
    """gemma-2-2b-it on NIM rejects both penalties with a 422 whose `error` is a string:
    `{"error":"body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden)\n
    body -> frequency_penalty\n ..."}` (Kilo-Org/kilocode #9652, curl-verified there)."""
    return (
        UpstreamReply(422, JSON, (compact({"error": NIM_PENALTIES}),)),
        ClientRequest(GEMMA, stream=False, extra=(("presence_penalty", 0), ("frequency_penalty", 0))),
        Expected(error=ExpectedError(422, NIM_PENALTIES)),
    )


# --------------------------------------------------------------------------- NIM's request validation (profile nim)
#
# Not in FIXTURES: these need the `nim` profile (tests/e2e/test_nim_e2e.py gives it to the
# local upstream with normalize_profile) and an upstream that validates: `rejects(body)`
# says whether NIM would refuse the request as sent; it answers `reply` then, else
# `nim_ok(body)`. Raw, the client gets `error`; through the addon, NIM's answer.


@dataclass(frozen=True)
class Rejection:
    name: str
    doc: str
    extra: tuple[tuple[str, Any], ...]  # keys the client adds to a plain chat request
    reply: UpstreamReply  # NIM's rejection, while the request has what it rejects
    error: ExpectedError  # what a client gets raw
    rejects: Callable[[dict[str, Any]], bool]
    tools: tuple[dict[str, Any], ...] = ()
    learned: bool = False  # the profile does not know it: the addon learns it from `reply`

    def __repr__(self) -> str:
        return f"Rejection({self.name})"


REJECTIONS: dict[str, Rejection] = {}


def rejection(build: Callable[[], Rejection]) -> Rejection:
    made = build()
    doc = " ".join((build.__doc__ or "").split())
    assert doc and made.name == build.__name__
    made = Rejection(**{**made.__dict__, "doc": doc})
    REJECTIONS[made.name] = made
    return made


def _wrapped(message: str) -> bytes:
    """NIM's wrapped validation error (router-for-me/CLIProxyAPI #4149)."""
    return compact({"error": {"message": message, "type": "Bad Request", "code": 400}})


def _unsupported(key: str, body: bytes, source: str, value: Any = True) -> Rejection:
    message = json.loads(body)
    message = message["error"]["message"] if isinstance(message.get("error"), dict) else message.get("message", message.get("error"))
    return Rejection(
        name=source, doc="", extra=((key, value),), reply=UpstreamReply(400, JSON, (body,)),
        error=ExpectedError(400, message), rejects=lambda b: key in b,
    )


@rejection
def nim_rejects_prompt_cache_key():
    """`prompt_cache_key` (Codex, opencode, kimi-cli, cc-switch): `{"message":"Validation:
    Unsupported parameter(s): `prompt_cache_key`","type":"Bad Request","code":400}`
    (ILoveBingLu/CipherTalk #353; diegosouzapw/OmniRoute #848; MoonshotAI/kimi-cli #2534)."""
    body = compact({"message": NIM_FLAT_MESSAGE, "type": "Bad Request", "code": 400})
    return _unsupported("prompt_cache_key", body, "nim_rejects_prompt_cache_key", "main")


@rejection
def nim_rejects_prompt_cache_key_pydantic():
    """The same field on other models, pydantic's list as a string (sipeed/picoclaw #1019)."""
    made = _unsupported("prompt_cache_key", compact({"error": NIM_EXTRA_FORBIDDEN}), "nim_rejects_prompt_cache_key_pydantic", "main")
    return made


@rejection
def nim_rejects_tool_stream():
    """`tool_stream` (GLM): `400 Validation: Unsupported parameter(s): `tool_stream``
    (Gitlawb/openclaude #1950), in the wrapped shape of CLIProxyAPI #4149."""
    return _unsupported("tool_stream", _wrapped("Validation: Unsupported parameter(s): `tool_stream`"), "nim_rejects_tool_stream")


@rejection
def nim_rejects_reasoning_budget():
    """`reasoning_budget`: `{'message': 'Validation: Unsupported parameter(s): reasoning_budget',
    'type': 'Bad Request', 'code': 400}`, flat (Alishahryar1/free-claude-code #127)."""
    body = compact({"message": "Validation: Unsupported parameter(s): reasoning_budget", "type": "Bad Request", "code": 400})
    return _unsupported("reasoning_budget", body, "nim_rejects_reasoning_budget", 2048)


@rejection
def nim_rejects_thinking():
    """`thinking` (DeepSeek-V4-Flash): `{"error":{"message":"Validation: Unsupported
    parameter(s): thinking","type":"Bad Request","code":400}}` (router-for-me/CLIProxyAPI #4149)."""
    return _unsupported("thinking", _wrapped("Validation: Unsupported parameter(s): thinking"), "nim_rejects_thinking", {"type": "enabled"})


@rejection
def nim_rejects_reasoning():
    """`reasoning` (an object, on every model): `400 Unsupported parameter(s): reasoning`
    (NousResearch/hermes-agent PR #77973); the wrapped shape inferred from CLIProxyAPI #4149."""
    return _unsupported("reasoning", _wrapped("Validation: Unsupported parameter(s): reasoning"), "nim_rejects_reasoning", {"effort": "high"})


@rejection
def nim_rejects_enable_thinking():
    """`enable_thinking` at the top level (qwen3.5) draws a 400 (can1357/oh-my-pi #2299);
    inferred: NIM's usual validation wording and shape."""
    return _unsupported("enable_thinking", _wrapped("Validation: Unsupported parameter(s): enable_thinking"), "nim_rejects_enable_thinking")


@rejection
def nim_rejects_client_metadata():
    """Codex's `client_metadata`: `400 Bad Request (Unsupported parameter: client_metadata)`
    (decolua/9router #1887); inferred: the wrapped shape."""
    return _unsupported("client_metadata", _wrapped("Unsupported parameter: client_metadata"), "nim_rejects_client_metadata", {"originator": "codex"})


STRICT_TOOL = {**TOOLS["get_weather"], "function": {**TOOLS["get_weather"]["function"], "strict": True}}


@rejection
def nim_rejects_function_strict():
    """`tools[].function.strict`: HTTP 401 `Failed to validate model spec: Unknown parameter:
    function.strict` (charmbracelet/crush #2472)."""
    body = compact({"error": {"message": NIM_STRICT_MESSAGE, "type": "invalid_request_error",
                              "param": "function.strict", "code": "invalid_value"}})
    return Rejection(
        "nim_rejects_function_strict", "", (), UpstreamReply(401, JSON, (body,)), ExpectedError(401, NIM_STRICT_MESSAGE),
        rejects=lambda b: any("strict" in t.get("function", {}) for t in b.get("tools", [])), tools=(STRICT_TOOL,),
    )


NIM_MAX_TOKENS_MESSAGE = "max_tokens must be at least 1, got -853. (parameter=max_tokens, value=-853)"


@rejection
def nim_rejects_max_tokens_below_1():
    """A client that computes the context left can send `max_tokens` <= 0: `{"message":
    "max_tokens must be at least 1, got -853. (parameter=max_tokens, value=-853)","type":
    "BadRequestError","param":"max_tokens","code":400}` (Alishahryar1/free-claude-code #1198)."""
    body = compact({"message": NIM_MAX_TOKENS_MESSAGE, "type": "BadRequestError", "param": "max_tokens", "code": 400})
    return Rejection(
        "nim_rejects_max_tokens_below_1", "", (("max_tokens", -853),), UpstreamReply(400, JSON, (body,)),
        ExpectedError(400, NIM_MAX_TOKENS_MESSAGE), rejects=lambda b: b.get("max_tokens", 1) < 1,
    )


@rejection
def nim_rejects_penalties():
    """gemma-2-2b-it rejects `presence_penalty` and `frequency_penalty` (Kilo-Org/kilocode #9652):
    no profile knows that per model, so the addon learns it from this 422."""
    return Rejection(
        "nim_rejects_penalties", "", (("presence_penalty", 0), ("frequency_penalty", 0)),
        UpstreamReply(422, JSON, (compact({"error": NIM_PENALTIES}),)), ExpectedError(422, NIM_PENALTIES),
        rejects=lambda b: "presence_penalty" in b or "frequency_penalty" in b, learned=True,
    )


NIM_CONTEXT = 8192
NIM_PROMPT_TOKENS = 12


def _context_message(body: dict[str, Any]) -> str:
    asked = body.get("max_tokens", 0)
    return (f"This model's maximum context length is {NIM_CONTEXT} tokens. However, you requested "
            f"{asked + NIM_PROMPT_TOKENS} tokens ({NIM_PROMPT_TOKENS} in the messages, {asked} in the completion). "
            "Please reduce the length of the messages or completion.")


@rejection
def nim_rejects_max_tokens_over_context():
    """vLLM-based NIMs reject a `max_tokens` the context cannot hold instead of clamping it:
    "This model's maximum context length is N tokens. However, you requested M tokens (P in the
    messages, Q in the completion)" (vllm #12886's wording; hermes-agent; Claude Code asks for
    32000 on every turn). Inferred: NIM wraps it as `{"error":{...}}` like its other vLLM errors."""
    body = {"max_tokens": 32000}
    reply = compact({"error": {"message": _context_message(body), "type": "BadRequestError", "param": None, "code": 400}})
    return Rejection(
        "nim_rejects_max_tokens_over_context", "", (("max_tokens", 32000),), UpstreamReply(400, JSON, (reply,)),
        ExpectedError(400, _context_message(body)),
        rejects=lambda b: b.get("max_tokens", 0) + NIM_PROMPT_TOKENS > NIM_CONTEXT, learned=True,
    )


NIM_CAP = 4096
NIM_CAP_MESSAGE = (f"[{{'type': 'less_than_equal', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be less than or "
                   f"equal to {NIM_CAP}', 'input': 32000, 'ctx': {{'le': {NIM_CAP}}}}}]")


@rejection
def nim_rejects_max_tokens_over_cap():
    """Other NIMs cap `max_tokens` itself: "max_tokens … Input should be less than or equal to N"
    (issue 14's report); inferred: pydantic's error list as a string, as sipeed/picoclaw #1019 shows."""
    return Rejection(
        "nim_rejects_max_tokens_over_cap", "", (("max_tokens", 32000),),
        UpstreamReply(400, JSON, (compact({"error": NIM_CAP_MESSAGE}),)), ExpectedError(400, NIM_CAP_MESSAGE),
        rejects=lambda b: b.get("max_tokens", 0) > NIM_CAP, learned=True,
    )


def nim_ok_completion(model: str) -> dict[str, Any]:
    """NIM's non-stream answer once a request passes validation (nim_stream_options_without_stream's shape)."""
    return {
        "id": "chatcmpl-nim-5d21", "object": "chat.completion", "created": 1754000200, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "reasoning_content": None, "tool_calls": None},
                     "logprobs": None, "finish_reason": "stop", "matched_stop": 128009}],
        "usage": {"prompt_tokens": 12, "total_tokens": 15, "completion_tokens": 3},
    }


def nim_ok_stream(model: str) -> list[bytes]:
    """NIM's stream once a request passes validation, nulls and all."""
    return ([sse(nim_chunk({"role": "assistant"}, model=model))] + [sse(nim_chunk({"content": p}, model=model)) for p in ("Hel", "lo!")]
            + [sse(nim_chunk({}, finish_reason="stop", model=model)), DONE])


# =========================================================================== Hugging Face TGI

TGI_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def tgi_chunk(delta: dict[str, Any], finish_reason: str | None = None, fingerprint: str = "3.0.1-native") -> dict[str, Any]:
    """TGI's chunk: `object` first, `"id":""`, usage null (router/src/lib.rs)."""
    return {
        "object": "chat.completion.chunk",
        "id": "",
        "created": 1732000000,
        "model": TGI_MODEL,
        "system_fingerprint": fingerprint,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


@fixture("HF TGI (axum)")
def tgi_axum_stream():
    """quirks.md §2 "HF TGI (axum)" and "TGI": `data:{json}` with no space, `:`
    keep-alive comments, `data:[DONE]`, `"id":""`, `{"role":"assistant",…}` on every
    chunk and `finish_reason:"eos_token"`. Sources: tokio-rs/axum `response/sse.rs`,
    TGI `router/src/server.rs` and `lib.rs`, TGI #2296; openai-python 0.27 #498."""
    pieces = ["The", " sky", " is", " blue", "."]
    events = [sse(tgi_chunk({"role": "assistant", "content": p}), space=False) for p in pieces]
    events.append(sse(tgi_chunk({"role": "assistant", "content": ""}, "eos_token"), space=False))
    # The second event arrives cut inside its JSON; keep-alives come between events.
    second = split(events[1], b'"choices"')
    chunks = [b":\n\n", events[0], second[0], second[1], b":\n\n", *events[2:], DONE_NO_SPACE]
    return (
        stream_reply(*chunks),
        ClientRequest(TGI_MODEL),
        Expected(text="The sky is blue.", finish_reason="stop"),
    )


@fixture("TGI")
def tgi_tool_calls_object_stream():
    """quirks.md §2 "TGI": streamed `tool_calls` was an object, not a list, until
    PR #3075 (2025-03), with `"id":""` and `name:null` after the first delta, and
    tool calls ending with `finish_reason:"stop"`. Sources: TGI `router/src/lib.rs`,
    snapshot `test_flash_llama_grammar_tools_sea_creatures_stream_function_object.json`,
    TGI #2461."""

    def call(name: str | None, arguments: str) -> dict[str, Any]:
        return {"index": 0, "id": "", "type": "function", "function": {"name": name, "arguments": arguments}}

    args = ['{"', "city", '":"', "Paris", '"}']
    chunks = [sse(tgi_chunk({"role": "assistant", "tool_calls": call("get_weather", "")}, fingerprint="3.1.1-native"), space=False)]
    chunks += [sse(tgi_chunk({"role": "assistant", "tool_calls": call(None, a)}, fingerprint="3.1.1-native"), space=False) for a in args]
    chunks += [sse(tgi_chunk({"role": "assistant", "tool_calls": call(None, "")}, "stop", fingerprint="3.1.1-native"), space=False),
               DONE_NO_SPACE]
    return (
        stream_reply(*chunks),
        ClientRequest(TGI_MODEL, tools=("get_weather",)),
        Expected(tool_calls=(ToolCall("get_weather", '{"city":"Paris"}'),), finish_reason="tool_calls"),
    )


@fixture("TGI")
def tgi_arguments_object_nonstream():
    """quirks.md §2 "TGI": a non-stream reply's tool call `arguments` is a JSON
    object, not a string; `"id":""`, content null, `description:null`, and
    finish_reason "stop" beside tool calls. Sources: TGI #2461, #2136 (the body);
    openai/haystack/langchain parse errors and an endless tool loop."""
    completion = {
        "object": "chat.completion",
        "id": "",
        "created": 1732000000,
        "model": TGI_MODEL,
        "system_fingerprint": "3.0.1-native",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "name": None,
                    "tool_calls": [
                        {
                            "id": "0",
                            "type": "function",
                            "function": {"description": None, "name": "get_weather", "arguments": {"city": "Paris"}},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 212, "completion_tokens": 21, "total_tokens": 233},
    }
    return (
        UpstreamReply(200, JSON, (compact(completion),)),
        ClientRequest(TGI_MODEL, stream=False, tools=("get_weather",)),
        Expected(
            tool_calls=(ToolCall("get_weather", '{"city":"Paris"}'),),
            finish_reason="tool_calls",
            usage={"prompt_tokens": 212, "completion_tokens": 21, "total_tokens": 233},
        ),
    )


TGI_ERROR = "Request failed during generation: Server error: CUDA out of memory. Tried to allocate 2.00 GiB"


@fixture("TGI")
def tgi_error_string_midstream():
    """quirks.md §2 "TGI": an error mid-stream as `data:{"error":"<msg>","error_type":"<t>"}`
    (a string) until PR #2668 (Nov 2024). Sources: TGI `server.rs`, `infer/mod.rs`;
    huggingface_hub #2514; openai-python gives the generic "An error occurred during
    streaming" (S)."""
    chunks = [
        sse(tgi_chunk({"role": "assistant", "content": "Once"}), space=False),
        sse(tgi_chunk({"role": "assistant", "content": " upon"}), space=False),
        sse({"error": TGI_ERROR, "error_type": "generation"}, space=False),
    ]
    return (
        stream_reply(*chunks),
        ClientRequest(TGI_MODEL),
        Expected(text="Once upon", error=ExpectedError(200, TGI_ERROR)),
    )


TGI_VALIDATION = "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3900 `inputs` tokens and 512 `max_new_tokens`"


@fixture("TGI")
def tgi_error_object_midstream():
    """quirks.md §2 "TGI": after PR #2668 (Nov 2024) an error mid-stream is
    `data:{"error":{"message":…,"http_status_code":422}}`: an object, but without
    OpenAI's `type`, `param` and `code`, and the stream ends there with no `[DONE]`.
    Sources: TGI `server.rs`, PR #2668."""
    chunks = [
        sse(tgi_chunk({"role": "assistant", "content": "Once"}, fingerprint="3.0.1-native"), space=False),
        sse({"error": {"message": TGI_VALIDATION, "http_status_code": 422}}, space=False),
    ]
    return (
        stream_reply(*chunks),
        ClientRequest(TGI_MODEL),
        Expected(text="Once", error=ExpectedError(200, TGI_VALIDATION)),
    )


# =========================================================================== vLLM

VLLM_CONTEXT = (
    "This model's maximum context length is 2048 tokens. However, you requested 2611 tokens "
    "(563 in the messages, 2048 in the completion). Please reduce the length of the messages or completion."
)


@fixture("vLLM <0.10.1")
def vllm_error_not_wrapped():
    """quirks.md §2 "vLLM <0.10.1": an HTTP error with no `error` wrapper,
    `{"object":"error","message":…,"type":"BadRequestError","param":null,"code":400}`.
    Sources: vllm #12886, fixed by PR #22099; openai-node shows `400 status code
    (no body)` (cline #396)."""
    body = compact({"object": "error", "message": VLLM_CONTEXT, "type": "BadRequestError", "param": None, "code": 400})
    return (
        UpstreamReply(400, JSON, (body,)),
        ClientRequest("facebook/opt-125m"),
        Expected(error=ExpectedError(400, VLLM_CONTEXT)),
    )


COMMAND_A = "CohereLabs/c4ai-command-a-03-2025"


def vllm_chunk(delta: dict[str, Any], finish_reason: str | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-5d1a0c3b9f0e4c7e",
        "object": "chat.completion.chunk",
        "created": 1760100000,
        "model": COMMAND_A,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **choice}],
    }


@fixture("vLLM")
def vllm_empty_first_tool_name():
    """quirks.md §2 "vLLM": the first tool delta has `function.name:""` (command-a) and
    the name arrives in a later delta. Source: vercel/ai PR #16507 (the AI SDK
    emitted an empty-named tool call and lost its args)."""
    call_id = "chatcmpl-tool-8f1c2a7e3b"
    chunks = [
        sse(vllm_chunk({"role": "assistant", "content": ""})),
        sse(vllm_chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                        "function": {"name": "", "arguments": ""}}]})),
        sse(vllm_chunk({"tool_calls": [{"index": 0, "function": {"name": "get_weather"}}]})),
        sse(vllm_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]})),
        sse(vllm_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]})),
        sse(vllm_chunk({"content": ""}, "tool_calls", stop_reason=None)),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest(COMMAND_A, tools=("get_weather",)),
        Expected(tool_calls=(ToolCall("get_weather", '{"city": "Paris"}'),), finish_reason="tool_calls"),
    )


GPT_OSS = "openai/gpt-oss-20b"


@fixture("vLLM")
def vllm_gpt_oss_reasoning():
    """quirks.md §2 "vLLM": gpt-oss reasoning arrives in `delta.reasoning`, not
    `reasoning_content` (and Ollama's thinking does too, row "Ollama (old)").
    Source: vercel/ai #7866."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **choice: Any) -> bytes:
        return sse({
            "id": "chatcmpl-b3f1e0d2c4a5968778695a4b",
            "object": "chat.completion.chunk",
            "created": 1760200000,
            "model": GPT_OSS,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **choice}],
        })

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning": r}) for r in ["The user", " greets", "; greet back."]]
    chunks += [chunk({"content": c}) for c in ["Hello", " again!"]]
    chunks += [chunk({"content": ""}, "stop", stop_reason=None), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest(GPT_OSS),
        Expected(text="Hello again!", reasoning="The user greets; greet back.", finish_reason="stop"),
    )


# =========================================================================== Ollama


def ollama_chunk(delta: dict[str, Any], finish_reason: str | None, *, id: str, model: str, created: int) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


@fixture("Ollama /v1")
def ollama_tool_calls_without_index():
    """quirks.md §2 "Ollama /v1": tool-call deltas had no `index` (fixed in 0.4.7),
    each call whole in one delta with role and content "" on every chunk; and
    (row "Ollama (old)") tools plus stream ended with `"stop"`. Sources: ollama
    #7881 (the bytes), #9092; the AI SDK fails type validation on `index`; the
    openai `.stream()` helper breaks (#7881)."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(ollama_chunk(delta, finish_reason, id="chatcmpl-763", model="llama3.2", created=1733000000))

    def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}

    chunks = [
        chunk({"role": "assistant", "content": "", "tool_calls": [call("call_rcja46yu", "get_weather", '{"city":"Paris"}')]}),
        chunk({"role": "assistant", "content": "", "tool_calls": [call("call_x81kq2mz", "get_time", '{"tz":"Europe/Paris"}')]}),
        chunk({"role": "assistant", "content": ""}, "stop"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("llama3.2", tools=("get_weather", "get_time")),
        Expected(
            tool_calls=(ToolCall("get_weather", '{"city":"Paris"}'), ToolCall("get_time", '{"tz":"Europe/Paris"}')),
            finish_reason="tool_calls",
        ),
    )


@fixture("Ollama")
def ollama_parallel_calls_index_0():
    """quirks.md §2 "Ollama": parallel tool calls all use `index:0`, each with its own
    id. Sources: ollama #15457 (and #15497 for models without a parser); the AI SDK
    drops or merges the calls (vercel/ai PR #14277); LiteLLM #33678 shows the merged
    arguments `{"path": "a.rs"}{"path": "b.rs"}`."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse(ollama_chunk(delta, finish_reason, id="chatcmpl-412", model="qwen2.5-coder:7b", created=1775700000))

    def call(call_id: str, arguments: str) -> dict[str, Any]:
        return {"id": call_id, "index": 0, "type": "function", "function": {"name": "file_write", "arguments": arguments}}

    first = '{"filePath":"hello.py","content":"print(\\"hello\\")"}'
    second = '{"filePath":"world.py","content":"print(\\"world\\")"}'
    chunks = [
        chunk({"role": "assistant", "content": "", "tool_calls": [call("call_4g1hxq2c", first)]}),
        chunk({"role": "assistant", "content": "", "tool_calls": [call("call_9zk3m0vd", second)]}),
        chunk({"role": "assistant", "content": ""}, "tool_calls"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("qwen2.5-coder:7b", tools=("file_write",)),
        Expected(tool_calls=(ToolCall("file_write", first), ToolCall("file_write", second)), finish_reason="tool_calls"),
    )


@fixture("Ollama (old)")
def ollama_old_empty_finish_reason():
    """quirks.md §2 "Ollama (old)": `"finish_reason":""` and role on every chunk
    (`"delta":{"role":"assistant","content":" Hello"},"finish_reason":""`), and the
    real finish_reason rides on the last content chunk. Sources: ollama #4357,
    PR #17485 (commit 8edecb5c); strict enums fail on ""."""

    def chunk(content: str, finish_reason: str) -> bytes:
        return sse(ollama_chunk({"role": "assistant", "content": content}, finish_reason,
                                id="chatcmpl-9", model="llama3", created=1715000000))

    chunks = [chunk("Hi", ""), chunk("!", ""), chunk(" Hello", ""), chunk(" there.", "stop"), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest("llama3"),
        Expected(text="Hi! Hello there.", finish_reason="stop"),
    )


# =========================================================================== LM Studio


@fixture("LM Studio 0.3.16")
def lmstudio_later_tool_names_empty():
    """quirks.md §2 "LM Studio 0.3.16": later tool chunks carry `"name":""`
    (`{"index":0,"type":"function","function":{"name":"","arguments":"count"}}`).
    Source: lmstudio-bug-tracker #649; gptel breaks, code that overwrites the name
    loses it (semantic-kernel #9567)."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse({
            "id": "chatcmpl-lq0k1r3bx8x6d0w9i2g7o",
            "object": "chat.completion.chunk",
            "created": 1749500000,
            "model": "qwen3-8b",
            "system_fingerprint": "qwen3-8b",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        })

    def later(arguments: str) -> dict[str, Any]:
        return {"tool_calls": [{"index": 0, "type": "function", "function": {"name": "", "arguments": arguments}}]}

    chunks = [
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "317906420", "type": "function", "function": {"name": "count_letters", "arguments": ""}}]}),
        chunk(later('{"word":"')),
        chunk(later("strawberry")),
        chunk(later('","letter":"r"}')),
        chunk({}, "tool_calls"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("qwen3-8b", tools=("count_letters",)),
        Expected(tool_calls=(ToolCall("count_letters", '{"word":"strawberry","letter":"r"}'),), finish_reason="tool_calls"),
    )


# =========================================================================== llama.cpp

LLAMACPP_CONTEXT = "the request exceeds the available context size, try increasing the context size or enable context shift"


@fixture("llama.cpp (2025 builds)")
def llamacpp_error_line_http_200():
    """quirks.md §2 "llama.cpp (2025 builds)": `error: {…}` (an `error:` field, not
    `data:`) then `data: [DONE]`, at HTTP 200. Fixed to `data: {"error":…}` by
    PR #16109. Sources: coddy-project/coddy-agent PR #106, llama.cpp #14566;
    openai-python ignores the line, so the completion is empty with no exception (R)."""
    error = {"code": 400, "message": LLAMACPP_CONTEXT, "type": "invalid_request_error"}
    return (
        stream_reply(b"error: " + compact(error) + b"\n\n", DONE),
        ClientRequest("qwen2.5-7b-instruct"),
        Expected(error=ExpectedError(200, LLAMACPP_CONTEXT)),
    )


LLAMACPP_TIMINGS = {
    "prompt_n": 12, "prompt_ms": 30.1, "prompt_per_token_ms": 2.51, "prompt_per_second": 398.7,
    "predicted_n": 4, "predicted_ms": 40.2, "predicted_per_token_ms": 10.05, "predicted_per_second": 99.5,
}
LLAMACPP_USAGE = {"completion_tokens": 4, "prompt_tokens": 12, "total_tokens": 16}


def _llamacpp_stream() -> list[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"choices": choices, "created": 1757000000, "id": "chatcmpl-Xc8aJ0q2sQ1rU2Lw",
                "model": "", "system_fingerprint": "b6500-4f6a3b1c", "object": "chat.completion.chunk", **extra}

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"finish_reason": finish_reason, "index": 0, "delta": delta}]

    events = [sse(chunk(choice({"role": "assistant", "content": None})))]
    events += [sse(chunk(choice({"content": p}))) for p in ["Hello", " from", " llama", ".cpp"]]
    events.append(sse(chunk(choice({}, "stop"), timings=LLAMACPP_TIMINGS)))
    events.append(sse(chunk([], usage=LLAMACPP_USAGE, timings=LLAMACPP_TIMINGS)))
    events.append(DONE)
    # llama-server writes as tokens come: two events in one piece, one cut across two.
    joined = b"".join(events)
    return split(joined, events[1], events[3], events[3][40:], events[5])


@fixture("llama.cpp")
def llamacpp_usage_chunk_unasked():
    """quirks.md §2 "llama.cpp": the first chunk is `{"role":"assistant","content":null}`,
    `model:""`, chunks carry `timings`, and after PR #15444 (Aug 2025) a `choices:[]`
    usage chunk is sent even without include_usage. Sources: llama.cpp #14268, #16048;
    `choices[0]` consumers break (compare Azure)."""
    return (
        stream_reply(*_llamacpp_stream()),
        ClientRequest("qwen2.5-7b-instruct"),
        Expected(text="Hello from llama.cpp", finish_reason="stop"),
    )


@fixture("llama.cpp")
def llamacpp_usage_chunk_asked():
    """quirks.md §2 "llama.cpp": the same stream when the client did ask for usage;
    its `choices:[]` usage chunk (with `timings`) is then what OpenAI sends last.
    Source: llama.cpp #16048."""
    return (
        stream_reply(*_llamacpp_stream()),
        ClientRequest("qwen2.5-7b-instruct", include_usage=True),
        Expected(text="Hello from llama.cpp", finish_reason="stop", usage=LLAMACPP_USAGE),
    )


# =========================================================================== exo


@fixture("exo (2024)")
def exo_stream_as_json():
    """quirks.md §2 "exo (2024)": the stream is sent with `Content-Type:
    application/json`, has no `[DONE]`, and its chunks say `"object":"chat.completion"`
    and carry both `message` and `delta`. (exo's `<|eot_id|>` leak into content is
    model text, not a wire shape, and is left out.) Sources: exo #175, PR #590,
    PR #716; bolt.diy PR #458; Open WebUI only streams `text/event-stream` (S)."""

    def chunk(content: str, finish_reason: str | None = None) -> bytes:
        part = {"role": "assistant", "content": content}
        return sse({
            "id": "chatcmpl-5b4e1c2d-8a3f-4b6e-9d0c-1e2f3a4b5c6d",
            "object": "chat.completion",
            "created": 1730000000,
            "model": "llama-3.2-1b",
            "system_fingerprint": "exo_0.0.1",
            "choices": [{"index": 0, "message": part, "logprobs": None, "finish_reason": finish_reason, "delta": part}],
        })

    chunks = [chunk("Hi"), chunk(" there"), chunk("!"), chunk("", "stop")]
    return (
        stream_reply(*chunks, content_type=JSON),
        ClientRequest("llama-3.2-1b"),
        Expected(text="Hi there!", finish_reason="stop"),
    )


@fixture("exo (2024)")
def exo_models_bare_list():
    """quirks.md §2 "exo (2024)": `/v1/models` is a bare array
    `[{"id":"llama-3.2-1b","object":"model","owned_by":"exo","ready":true},…]`
    (no `created`, no `{"object":"list","data":…}`). Source: exo PR #716; model
    pickers come up empty."""
    models = [
        {"id": "llama-3.2-1b", "object": "model", "owned_by": "exo", "ready": True},
        {"id": "llama-3.1-8b", "object": "model", "owned_by": "exo", "ready": False},
    ]
    return (
        UpstreamReply(200, JSON, (compact(models),)),
        ClientRequest("", stream=False, method="GET", path=MODELS_PATH),
        Expected(models=("llama-3.2-1b", "llama-3.1-8b")),
    )


# =========================================================================== DeepSeek, DashScope


def deepseek_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "2a1e6c8d-5b3f-4e7a-9c1d-0f8e7d6c5b4a",
        "object": "chat.completion.chunk",
        "created": 1738000000,
        "model": "deepseek-reasoner",
        "system_fingerprint": "fp_7e73fd9a08_prod0225",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


@fixture("DeepSeek")
def deepseek_reasoning_null_content():
    """quirks.md §2 "DeepSeek": `content:null` on every chunk while `reasoning_content`
    flows (naive `+=` printed `nullnullnull…Hey! 👋`), and `: keep-alive` comments
    under load. Sources: end-4/dots-hyprland #1254; DeepSeek "Rate Limit" docs."""
    thinking = ["Hmm", ", the user", " says hi", "."]
    chunks = [b": keep-alive\n\n", sse(deepseek_chunk({"role": "assistant", "content": None, "reasoning_content": ""}))]
    chunks += [sse(deepseek_chunk({"content": None, "reasoning_content": t})) for t in thinking]
    chunks.append(b": keep-alive\n\n")
    chunks += [sse(deepseek_chunk({"content": t, "reasoning_content": None})) for t in ["Hey!", " 👋"]]
    chunks += [sse(deepseek_chunk({"content": "", "reasoning_content": None}, "stop")), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest("deepseek-reasoner"),
        Expected(text="Hey! 👋", reasoning="Hmm, the user says hi.", finish_reason="stop"),
    )


@fixture("DeepSeek")
def deepseek_blank_lines_nonstream():
    """quirks.md §2 "DeepSeek": under load, blank lines come before a non-stream
    JSON body (sent while the request waits). Source: DeepSeek "Rate Limit" docs."""
    completion = {
        "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
        "object": "chat.completion",
        "created": 1738000100,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        "system_fingerprint": "fp_3a5770e1b4_prod0225",
    }
    return (
        UpstreamReply(200, JSON, (b"\n", b"\n\n", compact(completion))),
        ClientRequest("deepseek-chat", stream=False),
        Expected(text="Hello! How can I help you today?", finish_reason="stop",
                 usage={"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}),
    )


THINKING_MESSAGE = "Param Incorrect"


@fixture("DeepSeek")
def thinking_mode_history_error():
    """quirks.md §2 "DeepSeek": a thinking-mode provider rejects history that lacks
    reasoning with `{"error":{"code":"400","message":"Param Incorrect","param":"The
    reasoning_content in the thinking mode must be passed back to the API.","type":""}}`
    (an empty `type`). Source: Hawkzilla/cursor-reasoning-adapter README."""
    body = compact({"error": {"code": "400", "message": THINKING_MESSAGE,
                              "param": "The reasoning_content in the thinking mode must be passed back to the API.",
                              "type": ""}})
    return (
        UpstreamReply(400, JSON, (body,)),
        ClientRequest("deepseek-reasoner"),
        Expected(error=ExpectedError(400, THINKING_MESSAGE)),
    )


@fixture("DashScope deepseek-r1")
def dashscope_reasoning_no_space():
    """quirks.md §2 "DashScope deepseek-r1": `data:{"model":"deepseek-r1",…,"choices":
    [{"index":0,"delta":{"reasoning_content":"Okay","role":"assistant"}}],…}`: no space
    after `data:`, role on every chunk, no finish_reason key at all. Source:
    karthink/gptel PR #592."""

    def chunk(delta: dict[str, Any]) -> bytes:
        return sse({
            "model": "deepseek-r1",
            "id": "chatcmpl-3f0a9c5e-7b2d-9e41-a6c8-2d7f1b0e4c93",
            "created": 1738300000,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {**delta, "role": "assistant"}}],
        }, space=False)

    chunks = [chunk({"reasoning_content": r}) for r in ["Okay", ", a", " greeting"]]
    chunks += [chunk({"content": c}) for c in ["Hello", "!"]]
    chunks.append(DONE_NO_SPACE)
    return (
        stream_reply(*chunks),
        ClientRequest("deepseek-r1"),
        Expected(text="Hello!", reasoning="Okay, a greeting", finish_reason="stop"),
    )


# =========================================================================== Gemini


def gemini_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice: dict[str, Any] = {"delta": delta}
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
    choice["index"] = 0
    return sse({"choices": [choice], "created": 1745835935, "model": "gemini-2.0-flash", "object": "chat.completion.chunk"})


@fixture("Gemini compat")
def gemini_text_no_id():
    """quirks.md §2 "Gemini compat": `data: {"choices":[{"delta":{"content":"…",
    "role":"assistant"},"index":0}],"created":1745835935,"model":"gemini-2.0-flash",
    "object":"chat.completion.chunk"}`: no `id` and no finish_reason key until the
    last chunk. Source: kevinhermawan/swift-llm-chat-openai #18."""
    chunks = [
        gemini_chunk({"content": "Why", "role": "assistant"}),
        gemini_chunk({"content": " hello", "role": "assistant"}),
        gemini_chunk({"content": " there.", "role": "assistant"}, "stop"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("gemini-2.0-flash"),
        Expected(text="Why hello there.", finish_reason="stop"),
    )


@fixture("Gemini compat")
def gemini_tool_calls_no_index_no_id():
    """quirks.md §2 "Gemini compat": no chunk `id`, no tool-call `id`, tool deltas
    without `index` (two parallel calls in one delta), and streamed tool calls ending
    with `finish_reason:"stop"`. Sources: google/adk-python #951, anomalyco/opencode
    #17902, springfall2008/batpred #4904 (names concatenated
    `set_chat_titleget_statusget_logget_log`), googleapis/python-genai #2868."""
    calls = [
        {"function": {"arguments": '{"city":"Paris"}', "name": "get_weather"}, "type": "function"},
        {"function": {"arguments": '{"tz":"Europe/Paris"}', "name": "get_time"}, "type": "function"},
    ]
    chunks = [
        gemini_chunk({"role": "assistant", "tool_calls": calls}),
        gemini_chunk({"role": "assistant"}, "stop"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("gemini-2.0-flash", tools=("get_weather", "get_time")),
        Expected(
            tool_calls=(ToolCall("get_weather", '{"city":"Paris"}'), ToolCall("get_time", '{"tz":"Europe/Paris"}')),
            finish_reason="tool_calls",
        ),
    )


GEMINI_MESSAGE = 'Invalid JSON payload received. Unknown name "web_search_options": Cannot find field.'


@fixture("Gemini compat")
def gemini_error_array():
    """quirks.md §2 "Gemini compat": the error body is an array,
    `[{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name
    \\"web_search_options\\": Cannot find field.","status":"INVALID_ARGUMENT",…}}]`.
    Source: FuzzAnything/PromptFuzz #42 (`missing field message`)."""
    body = compact([{"error": {
        "code": 400,
        "message": GEMINI_MESSAGE,
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"description": GEMINI_MESSAGE}]}],
    }}])
    return (
        UpstreamReply(400, JSON, (body,)),
        ClientRequest("gemini-2.0-flash", extra=(("web_search_options", {}),)),
        Expected(error=ExpectedError(400, GEMINI_MESSAGE)),
    )


# =========================================================================== Groq, Azure

GROQ_USAGE = {
    "queue_time": 0.012, "prompt_tokens": 18, "prompt_time": 0.002, "completion_tokens": 5,
    "completion_time": 0.004, "total_tokens": 23, "total_time": 0.006,
}


@fixture("Groq")
def groq_x_groq_usage():
    """quirks.md §2 "Groq": usage comes under `x_groq.usage` on the finish chunk, not
    as a top-level `usage`. Sources: vercel/ai #1651, PR #1578 (AI SDK usage = NaN)."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, x_groq: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": "chatcmpl-0f4b8c2e-6a1d-4e9b-8c3f-2d1e0a9b8c7d",
            "object": "chat.completion.chunk",
            "created": 1716000000,
            "model": "llama-3.1-8b-instant",
            "system_fingerprint": "fp_9cb648b966",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if x_groq is not None:
            obj["x_groq"] = x_groq
        return sse(obj)

    chunks = [
        chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_01j0b8p5xkf3sa8x1y2z3w4v5t"}),
        chunk({"content": "Fast"}),
        chunk({"content": " inference."}),
        chunk({}, "stop", x_groq={"id": "req_01j0b8p5xkf3sa8x1y2z3w4v5t", "usage": GROQ_USAGE}),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("llama-3.1-8b-instant", include_usage=True),
        Expected(text="Fast inference.", finish_reason="stop", usage=GROQ_USAGE),
    )


_SAFE = {"filtered": False, "severity": "safe"}
AZURE_FILTERS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}


@fixture("Azure OpenAI")
def azure_prompt_filter_chunk():
    """quirks.md §2 "Azure OpenAI": the first chunk has empty choices,
    `{"id":"","choices":[],"created":0,"model":"","object":"","system_fingerprint":null,
    "prompt_filter_results":[…]}`, and an annotation chunk with no `delta` follows the
    finish. Sources: AbanteAI mentat #429 (`choices[0]` IndexError),
    seratch/ChatGPT-in-Slack PR #49, microsoft/autogen #6465."""

    def chunk(choice: dict[str, Any]) -> bytes:
        return sse({
            "choices": [choice],
            "created": 1717000000,
            "id": "chatcmpl-9U2yXk3mQ4Rz0aBcDeFgHiJkLmNo",
            "model": "gpt-4o-2024-05-13",
            "object": "chat.completion.chunk",
            "system_fingerprint": "fp_5f4bad809a",
        })

    def content(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return chunk({"content_filter_results": AZURE_FILTERS if delta.get("content") else {}, "delta": delta,
                      "finish_reason": finish_reason, "index": 0, "logprobs": None})

    chunks = [
        sse({"id": "", "choices": [], "created": 0, "model": "", "object": "", "system_fingerprint": None,
             "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": AZURE_FILTERS}]}),
        content({"content": "", "role": "assistant"}),
        content({"content": "Filtered"}),
        content({"content": " and fine."}),
        content({}, "stop"),
        sse({"choices": [{"content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 18},
                          "content_filter_results": AZURE_FILTERS, "finish_reason": None, "index": 0}],
             "created": 0, "id": "", "model": "", "object": ""}),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("gpt-4o"),
        Expected(text="Filtered and fine.", finish_reason="stop"),
    )


# =========================================================================== Misc row


@fixture("Misc (GLM-5, SGLang, TensorRT-Edge-LLM)")
def misc_empty_role_empty_finish_no_object():
    """quirks.md §2 "Misc": `role:""` (GLM-5; zed #42893, vercel/ai PR #15464
    `expected "assistant"`), `finish_reason:""` on content chunks (SGLang #3912,
    OpenSecretCloud/maple-proxy #3; async_openai `unknown variant ""`), and chunks
    missing `object` (NVIDIA/TensorRT-Edge-LLM #93; AIPerf `Unsupported OpenAI object
    type: None`), here in one stream."""

    def chunk(delta: dict[str, Any], finish_reason: str) -> bytes:
        return sse({"id": "chatcmpl-glm-61c0", "created": 1760500000, "model": "glm-5",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    chunks = [chunk({"role": "", "content": "Ni"}, ""), chunk({"role": "", "content": " hao"}, ""),
              chunk({"role": "", "content": ""}, "stop"), DONE]
    return (
        stream_reply(*chunks),
        ClientRequest("glm-5"),
        Expected(text="Ni hao", finish_reason="stop"),
    )


@fixture("Misc (Fireworks)")
def fireworks_arguments_null():
    """quirks.md §2 "Misc": `arguments:null` in the first tool delta (Fireworks).
    Source: BerriAI/litellm #4440 (`Input should be a valid string`)."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse({"id": "3c1b0f5e-8d2a-4f6b-9e7c-1a2b3c4d5e6f", "object": "chat.completion.chunk",
                    "created": 1719000000, "model": "accounts/fireworks/models/firefunction-v2",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    chunks = [
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_W4zRmTaYbq1n", "type": "function", "function": {"name": "get_weather", "arguments": None}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]}),
        chunk({}, "tool_calls"),
        DONE,
    ]
    return (
        stream_reply(*chunks),
        ClientRequest("accounts/fireworks/models/firefunction-v2", tools=("get_weather",)),
        Expected(tool_calls=(ToolCall("get_weather", '{"city": "Paris"}'),), finish_reason="tool_calls"),
    )


# --------------------------------------------------------------------------- groups

STREAMS = [f for f in FIXTURES.values() if f.is_stream]
TOOL_STREAMS = [f for f in STREAMS if f.has_tools]
TEXT_STREAMS = [f for f in STREAMS if not f.has_tools and f.expected.error is None]
STREAM_ERRORS = [f for f in STREAMS if f.expected.error is not None]
HTTP_ERRORS = [f for f in FIXTURES.values() if f.reply.status >= 400]
NON_STREAMS = [f for f in FIXTURES.values() if f.request.is_chat and not f.request.stream and f.reply.status < 400]


# =========================================================================== reading what a client got
#
# Plain functions over bytes and parsed JSON, for any test that has a client's
# view of a reply: `assemble_*` turn it into an `Expected` (so a test compares
# `assemble_stream(body) == fixture.expected`), `*_problems` list every way it
# differs from OpenAI's own shape, each problem prefixed with a short tag.


def serve(upstream: Any, fx: Fixture) -> None:
    """Registers `fx`'s reply on a tests/e2e/upstream.py ScriptedUpstream."""
    upstream.reply(fx.request.method, fx.request.path, list(fx.reply.chunks),
                   status=fx.reply.status, headers=fx.reply.all_headers())


def sse_events(body: bytes) -> list[bytes]:
    """The event blocks of a body framed as OpenAI frames it (LF only, blank line after each)."""
    blocks = body.split(b"\n\n")
    if blocks and blocks[-1] == b"":
        blocks.pop()
    return blocks


def stream_chunks(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of every `data:` event before [DONE] (chunks and error events)."""
    out = []
    for block in sse_events(body):
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            out.append(json.loads(block[6:]))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def assemble_stream(body: bytes, status: int = 200) -> Expected:
    """What a client builds from a stream: text, reasoning, tool calls by index
    (names and arguments joined with `+=`, as the common accumulators do),
    the last finish_reason, the usage chunk's usage, an error event's message."""
    text, reasoning = [], []
    calls: dict[int, dict[str, str]] = {}
    finish_reason = usage = error = None
    for obj in stream_chunks(body):
        if "error" in obj and "choices" not in obj:
            error = ExpectedError(status, obj["error"].get("message") if isinstance(obj["error"], dict) else obj["error"])
            continue
        if obj.get("choices") == [] and obj.get("usage") is not None:
            usage = obj["usage"]
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(_text(delta.get("content")))
            reasoning.append(_text(delta.get("reasoning_content")) + _text(delta.get("reasoning")))
            for call in delta.get("tool_calls") or []:
                acc = calls.setdefault(call.get("index"), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                acc["name"] += _text(function.get("name"))
                acc["arguments"] += _text(function.get("arguments"))
            if choice.get("finish_reason") is not None:
                finish_reason = choice["finish_reason"]
    ordered = [calls[i] for i in sorted(calls, key=lambda i: (not isinstance(i, int), i if isinstance(i, int) else 0))]
    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        tool_calls=tuple(ToolCall(c["name"], c["arguments"]) for c in ordered),
        finish_reason=finish_reason,
        usage=usage,
        error=error,
    )


def assemble_completion(obj: Any) -> Expected:
    """What a client reads from a non-stream `chat.completion`."""
    choice = obj["choices"][0]
    message = choice["message"]
    calls = tuple(ToolCall(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or [])
    return Expected(
        text=_text(message.get("content")),
        reasoning=_text(message.get("reasoning_content")) + _text(message.get("reasoning")),
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        usage=obj.get("usage"),
    )


def _nulls(value: Any, where: str) -> list[str]:
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{where}[{i}]")]
    return []


def _error_problems(obj: Any) -> list[str]:
    error = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(error, dict):
        return [f"error_shape: not {{'error': {{...}}}}: {obj!r}"]
    problems = []
    if not (isinstance(error.get("message"), str) and error["message"]):
        problems.append(f"error_shape: message missing or empty: {error!r}")
    if not isinstance(error.get("type"), str):
        problems.append(f"error_shape: type not a string: {error!r}")
    for key in ("param", "code"):
        if key not in error:
            problems.append(f"error_shape: no {key!r} key: {error!r}")
    return problems


def stream_problems(body: bytes, *, include_usage: bool = False) -> list[str]:
    """Every way `body` differs from an OpenAI chat completion stream."""
    problems: list[str] = []
    if body.count(b"data: [DONE]") != 1 or not (body == b"data: [DONE]\n\n" or body.endswith(b"\n\ndata: [DONE]\n\n")):
        problems.append("done: not exactly one `data: [DONE]`, last")
    if b"\r" in body:
        problems.append("framing: CR in body")
    events = sse_events(body)
    data = []
    for block in events:
        if all(line.startswith(b":") for line in block.split(b"\n")):
            continue  # comments (keep-alives) are valid SSE and ignored by clients
        if not block.startswith(b"data: ") or b"\n" in block:
            problems.append(f"framing: not one `data: ` line: {block[:80]!r}")
            continue
        data.append(block[6:])
    if data and data[-1] == b"[DONE]":
        data.pop()
    chunks = []
    saw_error = False
    for i, payload in enumerate(data):
        try:
            obj = json.loads(payload)
        except ValueError:
            problems.append(f"framing: data is not JSON: {payload[:80]!r}")
            continue
        if "error" in obj and "choices" not in obj:
            saw_error = True
            problems += _error_problems(obj)
            if i != len(data) - 1:
                problems.append("error: events after the error event")
            continue
        chunks.append(obj)

    ids, createds = set(), set()
    started: set[int] = set()
    calls_seen: dict[tuple[int, int], int] = {}
    finished = False
    for n, chunk in enumerate(chunks):
        ids.add(chunk.get("id"))
        createds.add(chunk.get("created"))
        if chunk.get("object") != "chat.completion.chunk":
            problems.append(f"object: {chunk.get('object')!r}")
        if not (isinstance(chunk.get("created"), int) and not isinstance(chunk.get("created"), bool)):
            problems.append(f"created: not an integer: {chunk.get('created')!r}")
        if not (isinstance(chunk.get("model"), str) and chunk["model"]):
            problems.append(f"model: missing or empty: {chunk.get('model')!r}")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            problems.append(f"choices: not a list: {choices!r}")
            continue
        if not choices:
            if not include_usage:
                problems.append("usage_chunk: a `choices:[]` chunk the client did not ask for")
            elif n != len(chunks) - 1 or not isinstance(chunk.get("usage"), dict):
                problems.append("usage_chunk: `choices:[]` chunk that is not the last, usage-bearing one")
            continue
        if "usage" in chunk:
            problems.append(f"usage: on a chunk with choices: {chunk['usage']!r}")
        problems += [f"null: {p}" for p in _nulls(chunk, "chunk") if ".delta" in p]
        for choice in choices:
            index = choice.get("index")
            if not isinstance(index, int):
                problems.append(f"choice_index: {index!r}")
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                problems.append(f"delta: not an object: {delta!r}")
                delta = {}
            if "finish_reason" not in choice:
                problems.append("finish_reason: key missing")
            if choice.get("finish_reason") is not None:
                finished = True
                if choice["finish_reason"] not in ("stop", "length", "tool_calls", "content_filter", "function_call"):
                    problems.append(f"finish_reason: not one of OpenAI's: {choice['finish_reason']!r}")
            if index not in started:
                started.add(index)
                if delta.get("role") != "assistant":
                    problems.append(f"role: first delta of choice {index} has role {delta.get('role')!r}")
            elif "role" in delta:
                problems.append(f"role: repeated in a later delta: {delta['role']!r}")
            for call in delta.get("tool_calls") or []:
                problems += _tool_call_problems(call, index, calls_seen)
    if len(ids) > 1 or not all(isinstance(i, str) and i for i in ids):
        problems.append(f"id: not one non-empty id: {sorted(map(repr, ids))}")
    if len(createds) > 1:
        problems.append(f"created: changes between chunks: {sorted(map(repr, createds))}")
    if chunks and not finished and not saw_error:
        problems.append("finish_reason: never sent")
    if chunks and not started:
        problems.append("role: no chunk with choices")
    return problems


def _tool_call_problems(call: Any, choice: int, seen: dict[tuple[int, int], int]) -> list[str]:
    if not isinstance(call, dict):
        return [f"tool_call: not an object: {call!r}"]
    index = call.get("index")
    if not (isinstance(index, int) and not isinstance(index, bool)):
        return [f"tool_index: missing or not an integer: {call!r}"]
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    key = (choice, index)
    seen[key] = seen.get(key, 0) + 1
    if seen[key] == 1:
        problems = []
        if not (isinstance(call.get("id"), str) and call["id"]):
            problems.append(f"tool_id: first delta of call {index} has no id: {call!r}")
        if call.get("type") != "function":
            problems.append(f"tool_type: first delta of call {index} has type {call.get('type')!r}")
        if not (isinstance(function.get("name"), str) and function["name"]):
            problems.append(f"tool_name: first delta of call {index} has no name: {call!r}")
        return problems
    problems = []
    for key_name, present in (("id", "id" in call), ("type", "type" in call), ("name", "name" in function)):
        if present:
            problems.append(f"tool_{key_name}: sent again in a later delta of call {index}: {call!r}")
    return problems


def completion_problems(obj: Any) -> list[str]:
    """Every way a non-stream body differs from OpenAI's `chat.completion`."""
    if not isinstance(obj, dict):
        return [f"completion: not an object: {obj!r}"]
    problems = []
    if not (isinstance(obj.get("id"), str) and obj["id"]):
        problems.append(f"id: {obj.get('id')!r}")
    if obj.get("object") != "chat.completion":
        problems.append(f"object: {obj.get('object')!r}")
    if not isinstance(obj.get("created"), int):
        problems.append(f"created: {obj.get('created')!r}")
    if not (isinstance(obj.get("model"), str) and obj["model"]):
        problems.append(f"model: {obj.get('model')!r}")
    for choice in obj.get("choices") or [None]:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            problems.append(f"choice: {choice!r}")
            continue
        message = choice["message"]
        if message.get("role") != "assistant":
            problems.append(f"role: {message.get('role')!r}")
        calls = message.get("tool_calls")
        if not isinstance(message.get("content"), str) and not (message.get("content") is None and calls):
            problems.append(f"content: {message.get('content')!r}")
        problems += [f"null: {p}" for p in _nulls(message, "message")
                     if p not in ("message.refusal", "message.content")]
        for call in calls or []:
            function = call.get("function") or {}
            if not (isinstance(call.get("id"), str) and call["id"]) or call.get("type") != "function":
                problems.append(f"tool_call: id/type: {call!r}")
            if not (isinstance(function.get("name"), str) and function["name"]):
                problems.append(f"tool_call: name: {call!r}")
            if not isinstance(function.get("arguments"), str):
                problems.append(f"tool_call: arguments not a string: {call!r}")
        if choice.get("finish_reason") not in ("stop", "length", "tool_calls", "content_filter", "function_call"):
            problems.append(f"finish_reason: {choice.get('finish_reason')!r}")
    return problems


def error_problems(obj: Any) -> list[str]:
    """Every way an error body differs from OpenAI's `{"error":{message,type,param,code}}`."""
    return _error_problems(obj)


def models_problems(obj: Any) -> list[str]:
    """Every way a model list differs from OpenAI's `{"object":"list","data":[Model]}`."""
    if not (isinstance(obj, dict) and obj.get("object") == "list" and isinstance(obj.get("data"), list)):
        return [f"models: not a list object: {obj!r}"]
    problems = []
    for model in obj["data"]:
        if not (isinstance(model.get("id"), str) and model.get("object") == "model"
                and isinstance(model.get("created"), int) and isinstance(model.get("owned_by"), str)):
            problems.append(f"model: {model!r}")
    return problems
