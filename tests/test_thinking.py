"""The reasoning switch of each model family (profiles/thinking.py), and how the chat exchange uses it."""

import json

import pytest

from normalize.endpoints.base import Env, Request, Shared
from normalize.endpoints.chat import CHAT
from normalize.profiles import GENERIC, PROFILES
from normalize.profiles.thinking import NIM, OPENS_INSIDE, THINK_TAGS
from normalize.repairs import Repair
from normalize.settings import Settings

NIM_PROFILE = PROFILES["nim"]
HI = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("model", "family", "reply"),
    [
        ("qwen/qwq-32b", "qwq", OPENS_INSIDE),
        ("nvidia/nemotron-3-nano-30b-a3b", "nemotron-3-nano", OPENS_INSIDE),
        ("deepseek-ai/deepseek-r1", "deepseek-r1", THINK_TAGS),
        ("deepseek-ai/deepseek-r1-0528", "deepseek-r1", THINK_TAGS),
        ("nvidia/llama-3.1-nemotron-ultra-253b-v1", "detailed-thinking", THINK_TAGS),
        ("Z-AI/GLM-5.1", "glm-5", "reasoning_content"),
        ("deepseek-ai/deepseek-v4-flash", "thinking", "reasoning_content"),
        ("openai/gpt-oss-120b", "reasoning_effort", "reasoning_content"),
    ],
)
def test_nim_families(model, family, reply):
    found = NIM_PROFILE.thinking_for(model)
    assert found is not None and (found.family, found.reply) == (family, reply)


def test_models_without_a_family():
    assert NIM_PROFILE.thinking_for("meta/llama-3.1-8b-instruct") is None
    assert NIM_PROFILE.thinking_for(None) is None
    assert GENERIC.thinking_for("qwen/qwq-32b") is None


def test_every_family_names_its_source():
    assert all(t.source for t in NIM)


def family(model):
    found = NIM_PROFILE.thinking_for(model)
    assert found is not None
    return found


def test_switch_by_chat_template_kwargs():
    glm = family("z-ai/glm-5.1")
    body = {"model": "z-ai/glm-5.1", "messages": HI, "chat_template_kwargs": {"top_k": 5}}
    on = glm.switch(body, True)
    assert on["chat_template_kwargs"] == {"top_k": 5, "enable_thinking": True, "clear_thinking": False}
    assert body["chat_template_kwargs"] == {"top_k": 5}  # not changed in place
    off = glm.switch(on, False)
    assert off["chat_template_kwargs"] == {"top_k": 5, "enable_thinking": False, "clear_thinking": False}
    assert glm.switched_off(off) and not glm.switched_off(on) and not glm.switched_off(body)


def test_switch_with_effort():
    v4 = family("deepseek-ai/deepseek-v4-flash")
    on = v4.switch({"messages": HI}, True, "xhigh")
    assert on == {"messages": HI, "chat_template_kwargs": {"thinking": True}, "reasoning_effort": "high"}
    off = v4.switch(on, False)
    assert off == {"messages": HI, "chat_template_kwargs": {"thinking": False}}
    oss = family("openai/gpt-oss-20b")
    assert oss.switch({"messages": HI}, True, "minimal") == {"messages": HI, "reasoning_effort": "low"}
    assert oss.switched_off({"reasoning_effort": "none"})


def test_switch_by_system_prompt():
    ultra = family("nvidia/llama-3.1-nemotron-ultra-253b-v1")
    on = ultra.switch({"messages": HI}, True)
    assert on["messages"] == [{"role": "system", "content": "detailed thinking on"}, *HI]
    mine = [{"role": "system", "content": "Be brief."}, *HI]
    assert ultra.switch({"messages": mine}, True)["messages"][0] == {"role": "system", "content": "detailed thinking on\nBe brief."}
    off = ultra.switch(on, False)
    assert off["messages"] == [{"role": "system", "content": "detailed thinking off"}, *HI]
    assert ultra.switched_off(off) and not ultra.switched_off(on)


def test_always_reasoning_family_has_no_switch():
    qwq = family("qwen/qwq-32b")
    assert not qwq.switchable
    assert qwq.switch({"messages": HI}, False) == {"messages": HI}


# -- the chat exchange ---------------------------------------------------------------------


def open_chat(body, profile=NIM_PROFILE, **settings):
    env = Env(Settings(**settings), profile, Shared())
    return CHAT.open(Request("POST", "/v1/chat/completions", body=json.dumps(body).encode()), env)


def test_the_profile_says_when_a_reply_opens_inside():
    assert open_chat({"model": "qwen/qwq-32b", "messages": HI}).options().opens_inside
    assert not open_chat({"model": "qwen/qwq-32b", "messages": HI}, GENERIC).options().opens_inside
    assert not open_chat({"model": "deepseek-ai/deepseek-r1", "messages": HI}).options().opens_inside
    nano = {"model": "nvidia/nemotron-3-nano-30b-a3b", "messages": HI}
    assert open_chat(nano).options().opens_inside
    off = {**nano, "chat_template_kwargs": {"enable_thinking": False}}
    assert not open_chat(off).options().opens_inside  # switched off: the reply is no reasoning
    assert not open_chat(nano, reasoning="keep").options().opens_inside
    assert open_chat(nano, reasoning="fold").options().reasoning == "fold"


def test_history_keeps_reasoning_content():
    # NIM thinking models reject an assistant turn without its reasoning_content (hermes-agent #92359).
    body = {
        "model": "deepseek-ai/deepseek-v4-flash",
        "messages": [
            *HI,
            {"role": "assistant", "content": None, "reasoning_content": "Look it up.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
    }
    for mode in ("split", "fold", "keep"):
        exchange = open_chat(body, reasoning=mode)
        sent = body if exchange.forward is None or exchange.forward.body is None else json.loads(exchange.forward.body)
        assert sent["messages"] == body["messages"], mode


def test_fold_sends_history_back_unfolded():
    body = {"model": "m", "messages": [*HI, {"role": "assistant", "content": "<think>Hmm</think>Hi!"}, *HI]}
    exchange = open_chat(body, reasoning="fold")
    assert exchange.forward is not None and exchange.forward.body is not None
    sent = json.loads(exchange.forward.body)
    assert sent["messages"][1] == {"role": "assistant", "content": "Hi!", "reasoning_content": "Hmm"}
    assert exchange.repairs[Repair.think_tags_in_history] == 1
    assert open_chat(body).forward is None  # split: the client's history goes as it is
    # A model that writes <think> in its content itself gets its history back as it wrote it.
    r1 = {**body, "model": "deepseek-ai/deepseek-r1"}
    assert open_chat(r1, reasoning="fold").forward is None


# -- the options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("normalize_reasoning", "fold", "reasoning"),
        ("normalize_embedding_input_type", "passage", "embedding_input_type"),
        ("normalize_embedding_input_type", "", "embedding_input_type"),
        ("normalize_embedding_truncate", "START", "embedding_truncate"),
    ],
)
def test_reasoning_and_embedding_options(name, value, field):
    from mitmproxy.test import taddons

    from normalize.mitm import addon

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        assert (a.settings.reasoning, a.settings.embedding_input_type, a.settings.embedding_truncate) == ("split", "query", "END")
        tctx.configure(a, **{name: value})
        assert getattr(a.settings, field) == value


@pytest.mark.parametrize(("name", "value"), [("normalize_reasoning", "strip"), ("normalize_embedding_input_type", "document"), ("normalize_embedding_truncate", "end")])
def test_bad_reasoning_and_embedding_options_are_refused(name, value):
    from mitmproxy import exceptions
    from mitmproxy.test import taddons

    from normalize.mitm import addon

    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match=f"Cannot parse {name} option: '{value}' is not one of"):
            tctx.configure(a, **{name: value})
