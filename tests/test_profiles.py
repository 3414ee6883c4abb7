"""Profiles: chosen by host, overridden per host with normalize_profile, described from their data."""

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from normalize.mitm import addon, options
from normalize.profiles import GENERIC, PROFILES, describe, profile_for


def test_every_upstream_has_a_profile():
    assert list(PROFILES) == ["nim", "vllm", "tgi", "ollama", "llamacpp", "lmstudio", "exo", "gemini", "groq",
                              "deepseek", "azure", "openai", "generic"]


def test_chosen_by_host():
    assert profile_for("integrate.api.nvidia.com").name == "nim"
    assert profile_for("[::1]") is GENERIC
    assert profile_for("x.openai.azure.com", 443).name == "azure"


def test_overridden_per_host_and_port():
    overrides = {("127.0.0.1", 8000): "vllm", ("tgi", None): "tgi", ("integrate.api.nvidia.com", 8443): "generic"}
    assert profile_for("127.0.0.1", 8000, overrides).name == "vllm"
    assert profile_for("127.0.0.1", 8001, overrides) is GENERIC
    assert profile_for("TGI", 80, overrides).name == "tgi"
    assert profile_for("integrate.api.nvidia.com", 8443, overrides) is GENERIC
    assert profile_for("integrate.api.nvidia.com", 443, overrides).name == "nim"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["127.0.0.1:8000=vllm"], {("127.0.0.1", 8000): "vllm"}),
        (["tgi=tgi,[::1]:9=nim"], {("tgi", None): "tgi", ("::1", 9): "nim"}),
        (["a=nim", "a=nim"], {("a", None): "nim"}),
    ],
)
def test_parse_profiles(entries, expected):
    assert dict(options.parse_profiles(entries)) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1:8000", "=vllm", "127.0.0.1:8000=nope", "host:0=nim", "a=nim,a=vllm"])
def test_bad_profile_option_is_refused(bad):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Cannot parse normalize_profile option"):
            tctx.configure(a, normalize_profile=[bad])


def test_profile_option_reaches_settings():
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        tctx.configure(a, normalize_profile=["127.0.0.1:8000=nim"], normalize_rate_limit="40/60s", normalize_default_max_tokens=16384)
        assert a.settings.profile_for("127.0.0.1", 8000).name == "nim"
        assert a.settings.profile_for("127.0.0.1", 8001) is GENERIC
        assert str(a.settings.rate_limit) == "40/60s" and a.pace.on
        assert a.settings.default_max_tokens == 16384
        tctx.configure(a, normalize_rate_limit="")
        assert not a.pace.on


@pytest.mark.parametrize(("name", "value"), [("normalize_rate_limit", "40 per minute"), ("normalize_default_max_tokens", -1)])
def test_bad_pacing_options_are_refused(name, value):
    a = addon.Normalize()
    with taddons.context(a) as tctx:
        with pytest.raises(exceptions.OptionsError, match=f"Cannot parse {name} option"):
            tctx.configure(a, **{name: value})


def test_describe():
    assert describe(PROFILES["openai"]) == (
        "Profile `openai` (the default for `api.openai.com`): keeps `max_completion_tokens` and `developer` messages as sent (it knows them)."
    )
    assert describe(GENERIC) == "Profile `generic`: adds no request rule of its own (the general request fixes and the reply repairs apply, as for every upstream)."
    nim = describe(PROFILES["nim"])
    assert nim.startswith("Profile `nim` (the default for `integrate.api.nvidia.com`): removes `prompt_cache_key`, `tool_stream`")
    assert "removes `strict` from each tool's `function`" in nim and "retries a rejected request" in nim
