"""Real Python clients against every upstream fixture: through the addon, and raw.

Clients: the `openai` SDK, sync and async, streamed (`create(stream=True)` read
with the loop OpenAI's docs show), not streamed, and the
`.chat.completions.stream()` helper (`get_final_completion()`); and
`langchain-openai`'s `ChatOpenAI` (`.stream()` with the chunks added up, tools
via `bind_tools`, and `.invoke()`). Each runs once through a regular-mode
`mitmdump -s addon.py` (one per module) and must produce exactly the fixture's
expectation; and once pointed straight at the upstream, where the tests at
the end assert precisely how it breaks (or, where it does not break, that it
does not, with a comment saying so).
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import openai
import pytest

import tests.upstreams as U
from tests.harness.proxy import MitmdumpProcess, shared_rig
from tests.harness.upstream import ScriptedUpstream
from tests.upstreams import Expected, ExpectedError, Fixture, ToolCall

pytestmark = pytest.mark.e2e


# =========================================================================== the clients


@dataclass
class Got:
    """What a client produced: the assembled result, and the exception it raised (if any)."""

    result: Expected
    exc: BaseException | None = None
    ids: tuple[Any, ...] = ()  # the tool call ids the application ends up with, in order


@dataclass(frozen=True)
class Target:
    """Where a client sends its requests: the upstream's base URL, through a proxy or not."""

    base_url: str  # ends in /v1
    proxy: str | None

    def http_client(self) -> httpx.Client:
        return httpx.Client(proxy=self.proxy, timeout=15)

    def async_http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(proxy=self.proxy, timeout=15)


def create_kwargs(fx: Fixture) -> dict[str, Any]:
    """The SDK's keyword arguments for the fixture's request (everything else as extra_body)."""
    r = fx.request
    kwargs: dict[str, Any] = {"model": r.model, "messages": [dict(m) for m in U.MESSAGES]}
    if r.tools:
        kwargs["tools"] = r.tool_params()
    if r.include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    if r.extra:
        kwargs["extra_body"] = dict(r.extra)
    return kwargs


def usage_dict(usage: Any) -> dict[str, Any] | None:
    return None if usage is None else usage.to_dict()


def extra_text(model: Any, *keys: str) -> str:
    extra = getattr(model, "model_extra", None) or {}
    return "".join(v for k in keys if isinstance(v := extra.get(k), str))


class StreamLoop:
    """The loop from OpenAI's streaming docs, with the usual `+=` tool call accumulator.

    `chunk.choices[0]` for every chunk, except the usage chunk the client asked for
    (OpenAI: only that one has empty choices); tool calls kept by `index`, their
    name and arguments joined with `+=`; reasoning from the delta's extra fields.
    """

    def __init__(self, fx: Fixture) -> None:
        self.fx = fx
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[Any, dict[str, str]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: Any) -> None:
        if self.fx.request.include_usage and not chunk.choices:
            self.usage = usage_dict(chunk.usage)
            return
        choice = chunk.choices[0]
        delta = choice.delta
        self.text.append(delta.content or "")
        self.reasoning.append(extra_text(delta, "reasoning_content", "reasoning"))
        for call in delta.tool_calls or []:
            acc = self.calls.setdefault(call.index, {"name": "", "arguments": "", "id": ""})
            if call.id:
                acc["id"] += call.id
            if call.function and call.function.name:
                acc["name"] += call.function.name
            if call.function and call.function.arguments:
                acc["arguments"] += call.function.arguments
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason

    def ids(self) -> tuple[str, ...]:
        return tuple(c["id"] for c in self.calls.values())

    def result(self, error: ExpectedError | None = None) -> Expected:
        return Expected(
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            tool_calls=tuple(ToolCall(c["name"], c["arguments"]) for c in self.calls.values()),
            finish_reason=self.finish_reason,
            usage=self.usage,
            error=error,
        )


def status_error(e: openai.APIStatusError) -> ExpectedError:
    body = e.body
    message = body.get("message") if isinstance(body, dict) else None
    return ExpectedError(e.status_code, message if isinstance(message, str) else repr(body))


def stream_error(e: openai.APIError) -> ExpectedError:
    """An error event inside an HTTP 200 stream (openai raises a plain APIError)."""
    return ExpectedError(200, e.message)


def openai_stream(target: Target, fx: Fixture) -> Got:
    loop = StreamLoop(fx)
    with openai.OpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                       http_client=target.http_client()) as client:
        try:
            with client.chat.completions.create(stream=True, **create_kwargs(fx)) as stream:
                for chunk in stream:
                    loop.add(chunk)
        except openai.APIStatusError as e:
            return Got(loop.result(status_error(e)), e)
        except openai.APIError as e:
            return Got(loop.result(stream_error(e)), e)
        except Exception as e:  # the client's own code broke (e.g. choices[0])
            return Got(loop.result(), e)
    return Got(loop.result(), ids=loop.ids())


def openai_stream_async(target: Target, fx: Fixture) -> Got:
    async def run() -> Got:
        loop = StreamLoop(fx)
        async with openai.AsyncOpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                                      http_client=target.async_http_client()) as client:
            try:
                stream = await client.chat.completions.create(stream=True, **create_kwargs(fx))
                async with stream:
                    async for chunk in stream:
                        loop.add(chunk)
            except openai.APIStatusError as e:
                return Got(loop.result(status_error(e)), e)
            except openai.APIError as e:
                return Got(loop.result(stream_error(e)), e)
            except Exception as e:
                return Got(loop.result(), e)
        return Got(loop.result(), ids=loop.ids())

    return asyncio.run(run())


def call_ids(message: Any) -> tuple[Any, ...]:
    return tuple(c.id for c in message.tool_calls or [])


def completion_result(completion: Any) -> Expected:
    """What a ChatCompletion says, from create() or from the stream helper's final completion."""
    choice = completion.choices[0]
    message = choice.message
    calls = tuple(ToolCall(c.function.name, c.function.arguments) for c in message.tool_calls or [])
    return Expected(
        text=message.content or "",
        reasoning=extra_text(message, "reasoning_content", "reasoning"),
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        usage=usage_dict(completion.usage),
    )


def openai_create(target: Target, fx: Fixture) -> Got:
    """`create()` with the fixture's own `stream` flag: an error fixture may be a stream request."""
    if fx.request.stream:
        return openai_stream(target, fx)
    with openai.OpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                       http_client=target.http_client()) as client:
        try:
            completion = client.chat.completions.create(**create_kwargs(fx))
            return Got(completion_result(completion), ids=call_ids(completion.choices[0].message))
        except openai.APIStatusError as e:
            return Got(Expected(error=status_error(e)), e)


def openai_create_async(target: Target, fx: Fixture) -> Got:
    if fx.request.stream:
        return openai_stream_async(target, fx)

    async def run() -> Got:
        async with openai.AsyncOpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                                      http_client=target.async_http_client()) as client:
            try:
                completion = await client.chat.completions.create(**create_kwargs(fx))
                return Got(completion_result(completion), ids=call_ids(completion.choices[0].message))
            except openai.APIStatusError as e:
                return Got(Expected(error=status_error(e)), e)

    return asyncio.run(run())


def snapshot_text(stream: Any) -> str:
    try:
        snapshot = stream.current_completion_snapshot
    except AssertionError:
        return ""  # no chunk arrived
    return snapshot.choices[0].message.content or "" if snapshot.choices else ""


def openai_stream_helper(target: Target, fx: Fixture) -> Got:
    """`with client.chat.completions.stream(...) as s: s.get_final_completion()`."""
    with openai.OpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                       http_client=target.http_client()) as client:
        try:
            with client.chat.completions.stream(**create_kwargs(fx)) as s:
                try:
                    final = s.get_final_completion()
                    return Got(completion_result(final), ids=call_ids(final.choices[0].message))
                except openai.APIError as e:
                    return Got(Expected(text=snapshot_text(s), error=stream_error(e)), e)
                except Exception as e:
                    return Got(Expected(text=snapshot_text(s)), e)
        except openai.APIStatusError as e:
            return Got(Expected(error=status_error(e)), e)


def openai_stream_helper_async(target: Target, fx: Fixture) -> Got:
    async def run() -> Got:
        async with openai.AsyncOpenAI(base_url=target.base_url, api_key="test", max_retries=0,
                                      http_client=target.async_http_client()) as client:
            try:
                async with client.chat.completions.stream(**create_kwargs(fx)) as s:
                    try:
                        final = await s.get_final_completion()
                        return Got(completion_result(final), ids=call_ids(final.choices[0].message))
                    except openai.APIError as e:
                        return Got(Expected(text=snapshot_text(s), error=stream_error(e)), e)
                    except Exception as e:
                        return Got(Expected(text=snapshot_text(s)), e)
            except openai.APIStatusError as e:
                return Got(Expected(error=status_error(e)), e)

    return asyncio.run(run())


# -- langchain-openai ----------------------------------------------------------


def chat_model(target: Target, fx: Fixture) -> Any:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        model=fx.request.model,
        base_url=target.base_url,
        api_key="test",
        max_retries=0,
        http_client=target.http_client(),
        stream_usage=fx.request.include_usage,
        extra_body=dict(fx.request.extra) or None,
    )
    return model.bind_tools(fx.request.tool_params()) if fx.request.tools else model


def langchain_usage(message: Any) -> dict[str, int] | None:
    """LangChain's usage_metadata, in OpenAI's names (only the three it maps)."""
    meta = getattr(message, "usage_metadata", None)
    if not meta:
        return None
    return {"prompt_tokens": meta["input_tokens"], "completion_tokens": meta["output_tokens"],
            "total_tokens": meta["total_tokens"]}


def langchain_result(message: Any, error: ExpectedError | None = None) -> Expected:
    calls = tuple(ToolCall(c["name"] or "", c["args"] or "") for c in message.tool_call_chunks)
    return Expected(
        text=message.content if isinstance(message.content, str) else "",
        tool_calls=calls,
        finish_reason=message.response_metadata.get("finish_reason"),
        usage=langchain_usage(message),
        error=error,
    )


def langchain_stream(target: Target, fx: Fixture) -> Got:
    """`.stream()`, the AIMessageChunks added up (`+`), as LangChain's docs do."""
    chunks: list[Any] = []
    try:
        for chunk in chat_model(target, fx).stream([dict(m) for m in U.MESSAGES]):
            chunks.append(chunk)
    except openai.APIStatusError as e:
        return Got(Expected(error=status_error(e)), e)
    except openai.APIError as e:
        return Got(langchain_joined(chunks, stream_error(e)), e)
    except Exception as e:
        return Got(langchain_joined(chunks), e)
    joined = functools.reduce(operator.add, chunks)
    return Got(langchain_joined(chunks), ids=tuple(c["id"] for c in joined.tool_calls))


def langchain_joined(chunks: list[Any], error: ExpectedError | None = None) -> Expected:
    if not chunks:
        return Expected(error=error)
    return langchain_result(functools.reduce(operator.add, chunks), error)


def langchain_invoke(target: Target, fx: Fixture) -> Got:
    """`.invoke()`, not streamed: the AIMessage's content, tool_calls and metadata."""
    if fx.request.stream:
        return langchain_stream(target, fx)
    try:
        message = chat_model(target, fx).invoke([dict(m) for m in U.MESSAGES])
    except openai.APIStatusError as e:
        return Got(Expected(error=status_error(e)), e)
    except Exception as e:  # LangChain's own parsing of the reply broke
        return Got(Expected(), e)
    calls = tuple(ToolCall(c["name"], c["args"]) for c in message.tool_calls)  # args: a dict here
    invalid = tuple(ToolCall(c["name"] or "", c["args"] or "") for c in message.invalid_tool_calls)
    return Got(ids=tuple(c["id"] for c in message.tool_calls), result=Expected(
        text=message.content if isinstance(message.content, str) else "",
        tool_calls=calls + invalid,
        finish_reason=message.response_metadata.get("finish_reason"),
        usage=langchain_usage(message),
    ))


# =========================================================================== what each client must produce


def expected_for(runner: Callable[[Target, Fixture], Got], fx: Fixture) -> Expected:
    """The fixture's expectation as this client can express it.

    LangChain's ChatOpenAI does not surface `reasoning_content`/`reasoning` (its docs
    say so: use a provider-specific class), so reasoning is not compared for it; its
    `usage_metadata` carries the three token counts only; `.invoke()` gives tool call
    arguments parsed (a dict), so they are compared parsed.
    """
    expected = replace(fx.expected, removed_params=())
    if runner in (langchain_stream, langchain_invoke):
        usage = expected.usage
        if usage is not None:
            usage = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        expected = replace(expected, reasoning="", usage=usage)
    if runner is langchain_invoke and not fx.request.stream:
        expected = replace(expected, tool_calls=tuple(
            ToolCall(c.name, json.loads(c.arguments)) for c in expected.tool_calls))
    return expected


def check_raised(got: Got, fx: Fixture) -> None:
    """No exception unless the fixture is an error; then the SDK's own error class."""
    error = fx.expected.error
    if error is None:
        assert got.exc is None, f"the client raised {got.exc!r}"
    elif error.status >= 400:
        assert isinstance(got.exc, openai.APIStatusError) and got.exc.status_code == error.status, repr(got.exc)
    else:
        assert isinstance(got.exc, openai.APIError) and not isinstance(got.exc, openai.APIStatusError), repr(got.exc)


def check_ids(got: Got, fx: Fixture) -> None:
    """Each tool call ends up with its own non-empty id (the application answers with it)."""
    if fx.expected.error is None and fx.expected.tool_calls:
        assert len(got.ids) == len(fx.expected.tool_calls), got.ids
        assert all(isinstance(i, str) and i for i in got.ids), got.ids
        assert len(set(got.ids)) == len(got.ids), got.ids


# =========================================================================== the rig


_rig, rig = shared_rig("python-clients")


def through_addon(rig: tuple[ScriptedUpstream, MitmdumpProcess], runner: Callable[[Target, Fixture], Got], fx: Fixture) -> Got:
    up, mitm = rig
    U.serve(up, fx)
    before = len(up.requests)
    got = runner(Target(up.url + "/v1", mitm.url), fx)
    assert len(up.requests) > before, "nothing reached the upstream"
    return got


def raw(rig: tuple[ScriptedUpstream, MitmdumpProcess], runner: Callable[[Target, Fixture], Got], fx: Fixture) -> Got:
    """The client pointed straight at the upstream: no proxy, no addon."""
    up, _ = rig
    U.serve(up, fx)
    return runner(Target(up.url + "/v1", None), fx)


def name(fx: Fixture) -> str:
    return fx.name


STREAM_CLIENTS = {
    "openai": openai_stream,
    "openai-async": openai_stream_async,
    "openai-helper": openai_stream_helper,
    "openai-helper-async": openai_stream_helper_async,
    "langchain": langchain_stream,
}
CALL_CLIENTS = {"openai": openai_create, "openai-async": openai_create_async, "langchain": langchain_invoke}
OPENAI_LOOPS = [openai_stream, openai_stream_async]
OPENAI_HELPERS = [openai_stream_helper, openai_stream_helper_async]


# =========================================================================== through the addon: exact results


@pytest.mark.parametrize("client", STREAM_CLIENTS)
@pytest.mark.parametrize("fx", U.STREAMS, ids=name)
def test_stream_through_addon(rig, fx: Fixture, client: str) -> None:
    """Every streamed fixture, every streaming client: exactly the fixture's text,
    reasoning, tool calls (names and arguments, in order), finish_reason and usage,
    and no exception, or for an error fixture, the SDK's APIError with the upstream's
    message after the text that came before it."""
    runner = STREAM_CLIENTS[client]
    got = through_addon(rig, runner, fx)
    check_raised(got, fx)
    assert got.result == expected_for(runner, fx)
    check_ids(got, fx)


@pytest.mark.parametrize("client", CALL_CLIENTS)
@pytest.mark.parametrize("fx", U.NON_STREAMS + U.HTTP_ERRORS, ids=name)
def test_call_through_addon(rig, fx: Fixture, client: str) -> None:
    """Every non-stream and HTTP-error fixture: the completion exactly (tool call arguments
    a JSON string the client can parse), or an APIStatusError subclass with the upstream's
    status and its message in `e.body["message"]` and in `str(e)`."""
    runner = CALL_CLIENTS[client]
    got = through_addon(rig, runner, fx)
    check_raised(got, fx)
    assert got.result == expected_for(runner, fx)
    check_ids(got, fx)
    if fx.expected.error is not None:
        assert str(got.exc) == f"Error code: {fx.expected.error.status} - {fx.expected.error.message}"


def test_models_through_addon(rig) -> None:
    """exo's bare model list: `client.models.list()` gives both models, in order."""
    up, mitm = rig
    U.serve(up, U.exo_models_bare_list)
    with openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0,
                       http_client=httpx.Client(proxy=mitm.url)) as client:
        assert [m.id for m in client.models.list()] == list(U.exo_models_bare_list.expected.models)


# =========================================================================== raw: how each client breaks
#
# The same clients pointed straight at the upstream. Each test asserts exactly
# what goes wrong, so the tests above prove it is the addon that makes them work.
# The async clients share the sync ones' decoders and accumulators; they are run
# too where the sync one breaks.


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS, langchain_stream], ids=lambda r: r.__name__)
def test_raw_repeated_tool_name_is_concatenated(rig, runner) -> None:
    """NIM MiniMax repeats the name in every chunk: every `+=` accumulator (the docs' loop,
    the `.stream()` helper's accumulate_delta, LangChain's chunk `+`) builds
    read_fileread_fileread_file."""
    got = raw(rig, runner, U.nim_repeated_tool_name)
    assert [c.name for c in got.result.tool_calls] == ["read_fileread_fileread_file", "read_fileread_file"]


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS, langchain_stream], ids=lambda r: r.__name__)
def test_raw_tgi_eos_token_finish_reason(rig, runner) -> None:
    """TGI's `eos_token` reaches the application as the finish_reason (not "stop")."""
    got = raw(rig, runner, U.tgi_axum_stream)
    assert got.exc is None and got.result.text == "The sky is blue."
    assert got.result.finish_reason == "eos_token"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, on the dict where a list belongs
def test_raw_tgi_tool_calls_object(rig) -> None:
    """TGI's `tool_calls` object: iterating it gives its keys (strings), so each client
    fails in its own way and no tool call comes out."""
    fx = U.tgi_tool_calls_object_stream
    for runner in OPENAI_LOOPS:
        got = raw(rig, runner, fx)
        assert isinstance(got.exc, AttributeError) and str(got.exc).startswith("'str' object has no attribute")
    for runner in OPENAI_HELPERS:
        got = raw(rig, runner, fx)  # tool_calls[tool_call_delta.index]: `.index` is str.index
        assert isinstance(got.exc, KeyError) and "built-in method index of str" in str(got.exc)
    got = raw(rig, langchain_stream, fx)
    assert isinstance(got.exc, TypeError) and "string indices must be integers" in str(got.exc)


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS, langchain_stream], ids=lambda r: r.__name__)
def test_raw_tgi_error_string_is_generic(rig, runner) -> None:
    """TGI's `{"error":"<text>"}` mid-stream: openai-python raises, but only with its
    generic message; the upstream's text is lost."""
    got = raw(rig, runner, U.tgi_error_string_midstream)
    assert isinstance(got.exc, openai.APIError) and got.exc.message == "An error occurred during streaming"


def test_raw_ollama_tool_calls_without_index(rig) -> None:
    """No `index`: the docs' loop files both calls under `None` and merges them; the
    `.stream()` helper raises; LangChain keeps both (its `model_dump` gives index None
    and chunks with no index are not merged) but reports finish_reason "stop"."""
    fx = U.ollama_tool_calls_without_index
    for runner in OPENAI_LOOPS:
        got = raw(rig, runner, fx)
        assert got.result.tool_calls == (ToolCall("get_weatherget_time", '{"city":"Paris"}{"tz":"Europe/Paris"}'),)
        assert got.result.finish_reason == "stop"
    for runner in OPENAI_HELPERS:
        got = raw(rig, runner, fx)
        assert isinstance(got.exc, TypeError) and "list indices must be integers or slices, not NoneType" in str(got.exc)
    got = raw(rig, langchain_stream, fx)
    assert got.exc is None and got.result.tool_calls == fx.expected.tool_calls
    assert got.result.finish_reason == "stop"


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS], ids=lambda r: r.__name__)
def test_raw_ollama_parallel_calls_merged(rig, runner) -> None:
    """Both calls at index 0: the docs' loop and the `.stream()` helper merge them into one
    call with both argument strings back to back (LiteLLM #33678's symptom). (LangChain
    keeps them apart: its merge refuses two different ids at one index.)"""
    fx = U.ollama_parallel_calls_index_0
    got = raw(rig, runner, fx)
    first, second = (c.arguments for c in fx.expected.tool_calls)
    assert got.exc is None
    assert got.result.tool_calls == (ToolCall("file_writefile_write", first + second),)


def test_raw_llamacpp_error_line(rig) -> None:
    """llama.cpp's `error:` line at HTTP 200: the docs' loop ends quietly with no text and
    no error; the `.stream()` helper fails on an empty snapshot; LangChain says only that
    no chunks came. The upstream's message reaches none of them."""
    fx = U.llamacpp_error_line_http_200
    for runner in OPENAI_LOOPS:
        got = raw(rig, runner, fx)
        assert got.exc is None and got.result == Expected()
    for runner in OPENAI_HELPERS:
        got = raw(rig, runner, fx)
        assert type(got.exc) is AssertionError
    got = raw(rig, langchain_stream, fx)
    assert isinstance(got.exc, ValueError) and str(got.exc) == "No generation chunks were returned"


@pytest.mark.parametrize("fx", [U.llamacpp_usage_chunk_unasked, U.azure_prompt_filter_chunk], ids=name)
@pytest.mark.parametrize("runner", OPENAI_LOOPS, ids=lambda r: r.__name__)
def test_raw_empty_choices_chunk_breaks_choices_0(rig, runner, fx: Fixture) -> None:
    """A `choices:[]` chunk the client did not ask for (llama.cpp's usage chunk, last;
    Azure's prompt-filter chunk, first): the docs' `chunk.choices[0]` raises IndexError.
    (The `.stream()` helper and LangChain skip such chunks.)"""
    got = raw(rig, runner, fx)
    assert isinstance(got.exc, IndexError)
    assert got.result.text == ("Hello from llama.cpp" if fx is U.llamacpp_usage_chunk_unasked else "")


@pytest.mark.parametrize("fx", [U.exo_stream_as_json, U.misc_empty_role_empty_finish_no_object], ids=name)
@pytest.mark.parametrize("runner", OPENAI_HELPERS, ids=lambda r: r.__name__)
def test_raw_helper_drops_chunks_not_called_chunk(rig, runner, fx: Fixture) -> None:
    """The `.stream()` helper skips every chunk whose `object` is not
    "chat.completion.chunk" (exo says "chat.completion"; the Misc stream has none), so
    it sees nothing and get_final_completion() fails. (The docs' loop and LangChain
    ignore `object` and get the text.)"""
    got = raw(rig, runner, fx)
    assert type(got.exc) is AssertionError and got.result.text == ""


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS, langchain_stream], ids=lambda r: r.__name__)
def test_raw_dashscope_no_finish_reason(rig, runner) -> None:
    """DashScope never sends a finish_reason: the text and reasoning arrive, the finish
    reason is None (agents that wait for "stop" wait forever)."""
    got = raw(rig, runner, U.dashscope_reasoning_no_space)
    assert got.exc is None and got.result.text == "Hello!"
    assert got.result.finish_reason is None


def test_raw_gemini_tool_calls(rig) -> None:
    """Gemini's tool calls (no index, no id, ending "stop"): the docs' loop merges both
    calls into `get_weatherget_time` (batpred's symptom); the `.stream()` helper raises;
    LangChain keeps both but reports "stop", so a loop waiting for "tool_calls" stops."""
    fx = U.gemini_tool_calls_no_index_no_id
    for runner in OPENAI_LOOPS:
        got = raw(rig, runner, fx)
        assert got.result.tool_calls == (ToolCall("get_weatherget_time", '{"city":"Paris"}{"tz":"Europe/Paris"}'),)
        assert got.result.finish_reason == "stop"
    for runner in OPENAI_HELPERS:
        got = raw(rig, runner, fx)
        assert isinstance(got.exc, TypeError) and "not NoneType" in str(got.exc)
    got = raw(rig, langchain_stream, fx)
    assert got.result.tool_calls == fx.expected.tool_calls and got.result.finish_reason == "stop"
    assert [c["id"] for c in _langchain_message(rig, fx).tool_calls] == [None, None]  # no id to answer with


def _langchain_message(rig, fx: Fixture) -> Any:
    up, _ = rig
    U.serve(up, fx)
    chunks = list(chat_model(Target(up.url + "/v1", None), fx).stream([dict(m) for m in U.MESSAGES]))
    return functools.reduce(operator.add, chunks)


@pytest.mark.parametrize("runner", [*OPENAI_LOOPS, *OPENAI_HELPERS, langchain_stream], ids=lambda r: r.__name__)
def test_raw_groq_usage_missing(rig, runner) -> None:
    """Groq's usage under `x_groq.usage`: no client finds any usage."""
    got = raw(rig, runner, U.groq_x_groq_usage)
    assert got.exc is None and got.result.text == "Fast inference."
    assert got.result.usage is None


def test_raw_nim_usage_on_every_chunk(rig) -> None:
    """NIM's running usage on every chunk: the docs' loop (which reads the `choices:[]`
    chunk) finds none; LangChain adds every chunk's totals up (9 prompt tokens counted
    six times). (The `.stream()` helper keeps the last chunk's usage, which is right.)"""
    fx = U.nim_usage_on_every_chunk
    for runner in OPENAI_LOOPS:
        assert raw(rig, runner, fx).result.usage is None
    got = raw(rig, langchain_stream, fx)
    assert got.result.usage == {"prompt_tokens": 54, "completion_tokens": 14, "total_tokens": 68}


def test_raw_nim_problem_json(rig) -> None:
    """NIM's `data:{problem}` 422: the SDK cannot parse the body, so `e.body` is the raw
    text and `str(e)` says only "Error code: 422"."""
    for runner in (openai_create, openai_create_async, langchain_invoke):
        got = raw(rig, runner, U.nim_problem_json_422)
        assert isinstance(got.exc, openai.UnprocessableEntityError)
        assert str(got.exc) == "Error code: 422"
        assert isinstance(got.exc.body, str) and got.exc.body.startswith('data:{"type":"urn:inference-service')


def test_raw_gemini_error_array(rig) -> None:
    """Gemini's error array: `e.body` is a list, `str(e)` says only "Error code: 400"."""
    for runner in (openai_create, openai_create_async, langchain_invoke):
        got = raw(rig, runner, U.gemini_error_array)
        assert isinstance(got.exc, openai.BadRequestError) and str(got.exc) == "Error code: 400"
        assert isinstance(got.exc.body, list)


def test_raw_tgi_arguments_object(rig) -> None:
    """TGI's non-stream `arguments` object: the SDK hands the application a dict where
    OpenAI sends a string (json.loads() on it raises TypeError), with finish_reason "stop";
    LangChain fails building its message (pydantic: invalid_tool_calls.0.args)."""
    fx = U.tgi_arguments_object_nonstream
    for runner in (openai_create, openai_create_async):
        got = raw(rig, runner, fx)
        assert got.result.tool_calls == (ToolCall("get_weather", {"city": "Paris"}),)
        assert got.result.finish_reason == "stop"
    got = raw(rig, langchain_invoke, fx)
    assert type(got.exc).__name__ == "ValidationError" and "invalid_tool_calls.0.args" in str(got.exc)


def test_raw_nim_stream_options_reach_upstream(rig) -> None:
    """Raw, a non-stream request with stream_options reaches NIM as sent, which NIM answers
    with `400 Validation: The 'stream_options' field is only allowed when 'stream' is set
    to true.` (the scripted upstream does not validate, so that 400 is not replayed here;
    through the addon the key is gone, see test_upstreams_e2e)."""
    up, _ = rig
    raw(rig, openai_create, U.nim_stream_options_without_stream)
    assert json.loads(up.requests[-1].body)["stream_options"] == {"include_usage": True}


def test_raw_exo_models_bare_list(rig) -> None:
    """exo's bare model list: `client.models.list()` raises inside the SDK."""
    up, _ = rig
    U.serve(up, U.exo_models_bare_list)
    with openai.OpenAI(base_url=up.url + "/v1", api_key="test", max_retries=0) as client:
        with pytest.raises(AttributeError, match="'list' object has no attribute '_set_private_attributes'"):
            client.models.list()


# -- where the raw upstream does not break these clients ------------------------
#
# Said here and checked, rather than a failure invented: these Python clients
# already cope with these upstreams (other clients do not; see quirks.md section 3
# and the Node client tests).

RAW_UNBROKEN = [
    # openai-python builds chunks with construct() and LangChain reads `content or ""`:
    # nulls and a missing first-chunk role do no harm here (they break strict parsers).
    ("openai", "nim_null_fields_stream"), ("openai-helper", "nim_null_fields_stream"),
    ("langchain", "nim_null_fields_stream"),
    # The helper keeps the last chunk's usage, which for NIM's running totals is right.
    ("openai-helper", "nim_usage_on_every_chunk"),
    # "" then the name: `+=` gives the name; it is the AI SDK that emits an empty-named call.
    ("openai", "vllm_empty_first_tool_name"), ("openai-helper", "vllm_empty_first_tool_name"),
    ("langchain", "vllm_empty_first_tool_name"),
    # TGI's newer error object has a message, which is all openai-python reads.
    ("openai", "tgi_error_object_midstream"), ("openai-helper", "tgi_error_object_midstream"),
    ("langchain", "tgi_error_object_midstream"),
    # Extra delta fields reach openai-python as extras (LangChain surfaces no reasoning at all).
    ("openai", "vllm_gpt_oss_reasoning"), ("openai-helper", "vllm_gpt_oss_reasoning"),
    ("langchain", "vllm_gpt_oss_reasoning"),
    # LangChain refuses to merge two ids at one index, so Ollama's reused 0 is harmless to it.
    ("langchain", "ollama_parallel_calls_index_0"),
    # finish_reason "" is falsy in Python and nothing validates the enum.
    ("openai", "ollama_old_empty_finish_reason"), ("openai-helper", "ollama_old_empty_finish_reason"),
    ("langchain", "ollama_old_empty_finish_reason"),
    # name "" appended with `+=` changes nothing; the clients here never overwrite a name.
    ("openai", "lmstudio_later_tool_names_empty"), ("openai-helper", "lmstudio_later_tool_names_empty"),
    ("langchain", "lmstudio_later_tool_names_empty"),
    # The client asked for usage, and the usage chunk is where OpenAI puts it.
    ("openai", "llamacpp_usage_chunk_asked"), ("openai-helper", "llamacpp_usage_chunk_asked"),
    ("langchain", "llamacpp_usage_chunk_asked"),
    # openai-python never looks at the content type, nor needs [DONE]: exo streams fine.
    ("openai", "exo_stream_as_json"), ("langchain", "exo_stream_as_json"),
    # `delta.content or ""` hides DeepSeek's nulls from these clients.
    ("openai", "deepseek_reasoning_null_content"), ("openai-helper", "deepseek_reasoning_null_content"),
    ("langchain", "deepseek_reasoning_null_content"),
    # A chunk without id is not a problem for these clients (it is for AI SDK < 2.0.35).
    ("openai", "gemini_text_no_id"), ("openai-helper", "gemini_text_no_id"), ("langchain", "gemini_text_no_id"),
    # The helper and LangChain skip Azure's filter chunks themselves.
    ("openai-helper", "azure_prompt_filter_chunk"), ("langchain", "azure_prompt_filter_chunk"),
    # The docs' loop and LangChain ignore `object`, and `role:""`/`finish_reason:""` are falsy.
    ("openai", "misc_empty_role_empty_finish_no_object"), ("langchain", "misc_empty_role_empty_finish_no_object"),
    # `arguments: null` is skipped by every accumulator here.
    ("openai", "fireworks_arguments_null"), ("openai-helper", "fireworks_arguments_null"),
    ("langchain", "fireworks_arguments_null"),
]
RAW_UNBROKEN_CALLS = [
    # openai-python and json.loads skip leading whitespace.
    ("openai", "deepseek_blank_lines_nonstream"), ("langchain", "deepseek_blank_lines_nonstream"),
    # Already OpenAI's shape.
    ("openai", "nim_backend_error_leak"), ("langchain", "nim_backend_error_leak"),
    # openai-python reads `body.get("error", body)`, so an unwrapped error still has its
    # message (openai-node says "400 status code (no body)": see the Node tests).
    ("openai", "vllm_error_not_wrapped"), ("langchain", "vllm_error_not_wrapped"),
    # An empty `type` is still a string to openai-python.
    ("openai", "thinking_mode_history_error"), ("langchain", "thinking_mode_history_error"),
]


@pytest.mark.parametrize(("client", "fixture_name"), RAW_UNBROKEN, ids="-".join)
def test_raw_stream_does_not_break(rig, client: str, fixture_name: str) -> None:
    """Raw, this client already gets exactly the expected result (see the comment above its row)."""
    fx = U.FIXTURES[fixture_name]
    runner = STREAM_CLIENTS[client]
    got = raw(rig, runner, fx)
    check_raised(got, fx)
    assert got.result == expected_for(runner, fx)


@pytest.mark.parametrize(("client", "fixture_name"), RAW_UNBROKEN_CALLS, ids="-".join)
def test_raw_call_does_not_break(rig, client: str, fixture_name: str) -> None:
    """Raw, this client already gets exactly the expected result (see the comment above its row)."""
    fx = U.FIXTURES[fixture_name]
    runner = CALL_CLIENTS[client]
    got = raw(rig, runner, fx)
    check_raised(got, fx)
    assert got.result == expected_for(runner, fx)


def test_raw_llamacpp_usage_unasked_is_harmless_to_helper_and_langchain(rig) -> None:
    """llama.cpp's unasked usage chunk: the `.stream()` helper and LangChain skip its empty
    choices and merely report usage the client did not ask for: not a failure."""
    fx = U.llamacpp_usage_chunk_unasked
    for runner in (*OPENAI_HELPERS, langchain_stream):
        got = raw(rig, runner, fx)
        assert got.exc is None
        assert got.result == replace(expected_for(runner, fx), usage=U.LLAMACPP_USAGE)
