"""Request rules for what an upstream's validation rejects, and what a rejection teaches.

One test per rule, named after the upstream behaviour (the Repair member);
the exchange tests drive `ChatExchange` the way the glue does: `Chat.open`
with the client's body, then `whole` with the upstream's rejection, and
`take_retry()` then `retried()` when the glue sent the offered retry.
"""

import json
from collections import Counter

import pytest

from normalize.endpoints.base import Env, Head, Reply, Request, Shared
from normalize.endpoints.chat import CHAT, ChatExchange
from normalize.endpoints.chat.validation import Fit, fit_request
from normalize.endpoints.learned import MAX_MODELS, MAX_NAME, MAX_PARAMS, Context, Learned, Model
from normalize.profiles import GENERIC, PROFILES
from normalize.repairs import Repair
from normalize.settings import Settings

NIM = PROFILES["nim"]
MESSAGES = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": {"type": "object"}}}


def fit(body, profile=NIM, learned=None, default_max_tokens=0):
    out, repairs = dict(body), Counter()
    fit_request(out, Fit(profile, learned, default_max_tokens), repairs)
    return out, dict(repairs)


# -- rules -----------------------------------------------------------------------


def test_param_unsupported():
    # NIM's "Unsupported parameter(s)" fields (profiles.NIM_REJECTED) go; the rest stays.
    body = {"model": "m", "messages": MESSAGES, "prompt_cache_key": "k", "tool_stream": True, "reasoning_budget": 10,
            "thinking": {"type": "enabled"}, "reasoning": {"effort": "high"}, "enable_thinking": True, "store": False,
            "metadata": {"a": "b"}, "temperature": 0.2}
    out, repairs = fit(body)
    assert out == {"model": "m", "messages": MESSAGES, "temperature": 0.2}
    assert repairs == {"param_unsupported": 8}


def test_param_unsupported_not_for_other_profiles():
    body = {"model": "m", "messages": MESSAGES, "prompt_cache_key": "k", "max_tokens": 0}
    assert fit(body, GENERIC) == (body, {})
    assert fit(body, PROFILES["openai"]) == (body, {})


def test_tool_function_key_unsupported():
    # NIM: 401 "Failed to validate model spec: Unknown parameter: function.strict".
    plain = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    body = {"model": "m", "messages": MESSAGES, "tools": [TOOL, plain]}
    out, repairs = fit(body)
    assert out["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}, plain]
    assert out["tools"][1] is plain
    assert TOOL["function"]["strict"] is True  # the client's body is never changed
    assert repairs == {"tool_function_key_unsupported": 1}


def test_param_rejected_before():
    learned = Model(params=frozenset({"presence_penalty", "tools[].function.x_extra"}))
    tool = {"type": "function", "function": {"name": "f", "x_extra": 1}}
    body = {"model": "m", "messages": MESSAGES, "presence_penalty": 0, "tools": [tool]}
    out, repairs = fit(body, GENERIC, learned)
    assert out == {"model": "m", "messages": MESSAGES, "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert repairs == {"param_rejected_before": 2}


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [0, -853])
def test_max_tokens_below_1(key, value):
    # NIM: "max_tokens must be at least 1, got -853." (free-claude-code #1198)
    out, repairs = fit({"model": "m", key: value})
    assert out == {"model": "m", key: 1}
    assert repairs == {"max_tokens_below_1": 1}


def test_max_tokens_not_a_number_is_left_alone():
    for value in (True, "5", 1.5, None):
        assert fit({"model": "m", "max_tokens": value}) == ({"model": "m", "max_tokens": value}, {})


def test_max_tokens_default_too_low():
    # NIM's own default stops thinking models on "hi" (hermes-agent #10279).
    assert fit({"model": "m"}, GENERIC, default_max_tokens=16384) == ({"model": "m", "max_tokens": 16384}, {"max_tokens_default_too_low": 1})
    assert fit({"model": "m", "max_tokens": 5}, GENERIC, default_max_tokens=16384) == ({"model": "m", "max_tokens": 5}, {})
    assert fit({"model": "m", "max_completion_tokens": 5}, GENERIC, default_max_tokens=9)[1] == {}


def test_max_tokens_over_model_limit():
    # A cap the upstream named: exact.
    out, repairs = fit({"model": "m", "max_tokens": 32000}, GENERIC, Model(cap=4096))
    assert out == {"model": "m", "max_tokens": 4096} and repairs == {"max_tokens_over_model_limit": 1}
    assert fit({"model": "m", "max_tokens": 100}, GENERIC, Model(cap=4096))[1] == {}
    # A context length: less the prompt, estimated from the body's size at the learned rate.
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 1000}], "max_tokens": 32000}
    out, repairs = fit(body, GENERIC, Model(context=Context(8192, 0.25)))
    size = len(json.dumps(body, separators=(",", ":")))
    assert out["max_tokens"] == 8192 - (-(-size * 0.25 * 1.1 // 1)) - 16
    assert repairs == {"max_tokens_over_model_limit": 1}
    # A prompt that fills the context alone: nothing to lower to; the upstream will say so.
    assert fit(body, GENERIC, Model(context=Context(200, 0.25)))[1] == {}


def test_default_max_tokens_then_lowered():
    out, repairs = fit({"model": "m"}, GENERIC, Model(cap=1024), default_max_tokens=16384)
    assert out == {"model": "m", "max_tokens": 1024}
    assert repairs == {"max_tokens_default_too_low": 1, "max_tokens_over_model_limit": 1}


# -- what a rejection teaches (the exchange) ---------------------------------------


def exchange(body, profile=NIM, shared=None, host="integrate.api.nvidia.com:443", **settings):
    env = Env(Settings(**settings), profile, shared or Shared(), "POST test", host)
    ex = CHAT.open(Request("POST", "/v1/chat/completions", body=json.dumps(body).encode()), env)
    assert isinstance(ex, ChatExchange)
    return ex


def reject(ex, status, body, content_type="application/json"):
    reply = ex.whole(Head(status, content_type, "POST"), body if isinstance(body, bytes) else json.dumps(body).encode())
    assert isinstance(reply, Reply)
    return reply.status, json.loads(reply.body)


GEMMA_422 = {"error": "body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden)\n"
                      "body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)"}


def test_param_rejected():
    # Kilo-Org/kilocode #9652: gemma-2-2b-it on NIM rejects both penalties with a 422.
    shared = Shared()
    body = {"model": "google/gemma-2-2b-it", "messages": MESSAGES, "presence_penalty": 0, "frequency_penalty": 0}
    ex = exchange(body, shared=shared)
    status, error = reject(ex, 422, GEMMA_422)
    assert status == 422
    assert error["error"]["message"] == (
        GEMMA_422["error"] + " (the proxy will drop `presence_penalty`, `frequency_penalty` from this model's requests from now on)"
    )
    assert ex.repairs == {"param_rejected": 2, "error_is_string": 1}
    assert json.loads(ex.retry.body) == {"model": "google/gemma-2-2b-it", "messages": MESSAGES}
    # The next request for that model on that host goes without them; another model keeps them.
    later = exchange(body, shared=shared)
    assert json.loads(later.forward.body) == {"model": "google/gemma-2-2b-it", "messages": MESSAGES}
    assert later.repairs == {"param_rejected_before": 2}
    assert exchange({**body, "model": "meta/llama-3.1-8b-instruct"}, shared=shared).forward is None
    assert exchange(body, shared=shared, host="other:443").forward is None


def test_param_rejected_stream_gets_no_retry():
    ex = exchange({"model": "g", "messages": MESSAGES, "presence_penalty": 0, "stream": True})
    status, error = reject(ex, 422, {"error": "body -> presence_penalty\n  Extra inputs are not permitted"})
    assert error["error"]["message"].endswith("(the proxy will drop `presence_penalty` from this model's requests from now on)")
    assert ex.retry is None


def test_param_rejected_only_for_learning_profiles():
    ex = exchange({"model": "g", "messages": MESSAGES, "presence_penalty": 0}, profile=GENERIC)
    assert reject(ex, 422, GEMMA_422)[1]["error"]["message"] == GEMMA_422["error"]
    assert ex.retry is None and ex.repairs == {"error_is_string": 1}


def test_param_rejected_not_sent_is_not_learned():
    # A parameter the request did not have is no lesson (nor is a protected one).
    shared = Shared()
    ex = exchange({"model": "g", "messages": MESSAGES, "tools": [TOOL]}, profile=PROFILES["gemini"], shared=shared)
    reject(ex, 400, {"error": {"message": "Validation: Unsupported parameter(s): `top_k`, `tools`", "type": "Bad Request", "code": 400}})
    assert ex.retry is None and not shared.learned.models


def test_function_strict_rejected_learned_as_tool_path():
    # NIM's 401 names function.strict; with the generic profile's rules off, it is learned (gemini-like profile).
    shared = Shared()
    body = {"model": "g", "messages": MESSAGES, "tools": [TOOL]}
    ex = exchange(body, profile=PROFILES["groq"], shared=shared)
    status, error = reject(ex, 401, {"error": {"message": "Failed to validate model spec: Unknown parameter: function.strict",
                                               "type": "invalid_request_error", "param": "function.strict", "code": "invalid_value"}})
    assert status == 400
    assert "drop `tools[].function.strict`" in error["error"]["message"]
    assert json.loads(ex.retry.body)["tools"][0]["function"] == {"name": "get_weather", "parameters": {"type": "object"}}


VLLM_CONTEXT = ("This model's maximum context length is 8192 tokens. However, you requested 32012 tokens "
                "(12 in the messages, 32000 in the completion). Please reduce the length of the messages or completion.")


def test_max_tokens_rejected():
    # vLLM-based NIMs reject a max_tokens that does not fit (hermes-agent, Claude Code's 32000).
    shared = Shared()
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 32000}
    ex = exchange(body, shared=shared)
    status, error = reject(ex, 400, {"object": "error", "message": VLLM_CONTEXT, "type": "BadRequestError", "param": None, "code": 400})
    assert status == 400
    assert error["error"]["message"] == VLLM_CONTEXT + " (the proxy will lower max_tokens to what this model allows from now on (here 8180))"
    assert json.loads(ex.retry.body)["max_tokens"] == 8180
    assert ex.repairs == {"max_tokens_rejected": 1, "error_not_wrapped": 1}
    learned = shared.learned.get("integrate.api.nvidia.com:443", "m")
    assert learned.context.tokens == 8192 and learned.cap is None
    # Later requests are lowered up front (estimated), so they fit.
    later = exchange(body, shared=shared)
    assert 1 <= json.loads(later.forward.body)["max_tokens"] < 8180
    assert later.repairs == {"max_tokens_over_model_limit": 1}


def test_max_tokens_rejected_cap():
    # pydantic's `le` on max_tokens, in NIM's string error: the cap is exact.
    shared = Shared()
    ex = exchange({"model": "m", "messages": MESSAGES, "max_completion_tokens": 32000}, shared=shared, legacy_params=False)
    message = "[{'type': 'less_than_equal', 'loc': ('body', 'max_completion_tokens'), 'msg': 'Input should be less than or equal to 4096', 'input': 32000}]"
    reject(ex, 422, {"error": message})
    assert json.loads(ex.retry.body)["max_completion_tokens"] == 4096
    assert json.loads(exchange({"model": "m", "max_tokens": 9000}, shared=shared).forward.body)["max_tokens"] == 4096


def test_rejected_request_retried():
    # The glue sent the retry: the first error's repairs are not the client's, the lesson is.
    body = {"model": "g", "messages": MESSAGES, "presence_penalty": 0, "frequency_penalty": 0}
    ex = exchange(body)
    reject(ex, 422, GEMMA_422)
    assert ex.take_retry() is not None and ex.take_retry() is None  # given once
    ex.retried()
    assert ex.repairs == {"param_rejected": 2, "rejected_request_retried": 1}
    # A second rejection is passed on, with no second retry.
    reject(ex, 400, {"error": {"message": "Validation: Unsupported parameter(s): `temperature`", "type": "Bad Request", "code": 400}})
    assert ex.retry is None


def test_learned_is_bounded():
    learned = Learned()
    for i in range(MAX_MODELS + 10):
        learned.reject("h", f"m{i}", ["x"])
    assert len(learned.models) == MAX_MODELS
    assert learned.get("h", "m0") is None and learned.get("h", f"m{MAX_MODELS + 9}") is not None


def test_learned_params_are_bounded_per_model():
    """A client sending endless made-up keys to an upstream that names each one it rejects:
    one model keeps the last MAX_PARAMS learned, the earliest forgotten first."""
    learned = Learned()
    for i in range(MAX_PARAMS + 36):
        learned.reject("h", "m", [f"junk_{i}", f"junk_{i}"])
    params = learned.get("h", "m").params
    assert len(params) == MAX_PARAMS
    assert "junk_0" not in params and f"junk_{MAX_PARAMS + 35}" in params and "junk_36" in params
    learned.reject("h", "m", ["x" * (MAX_NAME + 1)])
    assert "x" * (MAX_NAME + 1) not in learned.get("h", "m").params


def test_learned_model_names_are_bounded():
    learned = Learned()
    learned.reject("h", "m" * (MAX_NAME + 1), ["presence_penalty"])
    learned.limit("h", "m" * (MAX_NAME + 1), cap=10)
    assert not learned.models
    learned.reject("h", "m" * MAX_NAME, ["presence_penalty"])
    assert learned.get("h", "m" * MAX_NAME).params == {"presence_penalty"}


def test_max_tokens_default_under_the_name_the_upstream_takes():
    # OpenAI's o-series reject `max_tokens`: with the openai profile the default goes as max_completion_tokens.
    assert exchange({"model": "o3", "messages": MESSAGES}, profile=PROFILES["openai"], default_max_tokens=100).sent == {
        "model": "o3", "messages": MESSAGES, "max_completion_tokens": 100}
    assert exchange({"model": "m", "messages": MESSAGES}, default_max_tokens=100).sent["max_tokens"] == 100


def test_openai_profile_keeps_newer_names():
    body = {"model": "o3", "messages": [{"role": "developer", "content": "x"}], "max_completion_tokens": 5}
    assert exchange(body, profile=PROFILES["openai"]).forward is None
    assert json.loads(exchange(body, profile=GENERIC).forward.body)["max_tokens"] == 5


def test_param_unsupported_spares_the_fields_a_model_family_switches_reasoning_with():
    # NIM rejects `thinking` on most models (CLIProxyAPI #4149), but GLM-5.2 takes it as its switch.
    from normalize.profiles import PROFILES

    repairs = Counter()
    glm = {"model": "z-ai/glm-5.2", "thinking": {"type": "enabled"}, "messages": []}
    fit_request(glm, Fit(PROFILES["nim"]), repairs)
    assert glm["thinking"] == {"type": "enabled"}
    other = {"model": "deepseek-ai/deepseek-v4-flash", "thinking": {"type": "enabled"}, "messages": []}
    fit_request(other, Fit(PROFILES["nim"]), repairs)
    assert "thinking" not in other
    assert repairs[Repair.param_unsupported] == 1


@pytest.mark.parametrize(
    ("model", "effort", "sent"),
    [
        # A family switched by chat_template_kwargs gets that instead (GLM-5.1).
        ("z-ai/glm-5.1", "high", {"chat_template_kwargs": {"enable_thinking": True, "clear_thinking": False}}),
        ("z-ai/glm-5.1", "none", {"chat_template_kwargs": {"enable_thinking": False}}),
        # A family that takes reasoning_effort keeps it, in its words (low | medium | high).
        ("openai/gpt-oss-120b", "minimal", {"reasoning_effort": "low"}),
        # A model no family knows: as the client sent it.
        ("meta/llama-3.1-8b-instruct", "high", {"reasoning_effort": "high"}),
    ],
)
def test_reasoning_effort_not_the_switch(model, effort, sent):
    repairs = Counter()
    body = {"model": model, "messages": [], "reasoning_effort": effort}
    fit_request(body, Fit(PROFILES["nim"]), repairs)
    assert body == {"model": model, "messages": [], **sent}
    assert repairs[Repair.reasoning_effort_not_the_switch] == (0 if model.startswith("meta/") else 1)
