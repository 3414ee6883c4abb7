"""Reading a rejection's message: which parameters, what max_tokens fits. Messages as upstreams wrote them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.rejected import TokenLimit, rejected_params, token_limit


@pytest.mark.parametrize(
    ("message", "params"),
    [
        # NIM, backticks (OmniRoute #848) and without (free-claude-code #127)
        ("Validation: Unsupported parameter(s): `prompt_cache_key`", ["prompt_cache_key"]),
        ("Validation: Unsupported parameter(s): reasoning_budget", ["reasoning_budget"]),
        ("Validation: Unsupported parameter(s): `tool_stream`, `thinking`", ["tool_stream", "thinking"]),
        # 9router #1887; crush #2472
        ("Unsupported parameter: client_metadata", ["client_metadata"]),
        ("Failed to validate model spec: Unknown parameter: function.strict", ["tools[].function.strict"]),
        # pydantic 2 as NIM repeats it (sipeed/picoclaw #1019)
        ("[{'type': 'extra_forbidden', 'loc': ('body', 'prompt_cache_key'), 'msg': 'Extra inputs are not permitted', 'input': 'main'}]",
         ["prompt_cache_key"]),
        ("[{'type': 'extra_forbidden', 'loc': ('body', 'tools', 0, 'function', 'strict'), 'msg': 'x'}]", ["tools[].function.strict"]),
        # pydantic 1 (BerriAI/litellm #4558, Kilo-Org/kilocode #9652), and errors.py's FastAPI text
        ("body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)", ["frequency_penalty"]),
        ("body -> presence_penalty\n  Extra inputs are not permitted (type=extra_forbidden)\n"
         "body -> frequency_penalty\n  Extra inputs are not permitted (type=extra_forbidden)", ["presence_penalty", "frequency_penalty"]),
        ("body -> dimensions: Extra inputs are not permitted", ["dimensions"]),
        # Gemini (PromptFuzz #42), nested; Groq (vercel/ai #1651)
        ('Invalid JSON payload received. Unknown name "web_search_options": Cannot find field.', ["web_search_options"]),
        ("Invalid JSON payload received. Unknown name \"strict\" at 'tools[0].function': Cannot find field.", ["tools[].function.strict"]),
        ("property 'stream_options' is unsupported, did you mean 'stream'?", ["stream_options"]),
        # never learned: what the request means (OpenAI's own o-series message), nested keys elsewhere
        ("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", []),
        ("Validation: Unsupported parameter(s): `tools`, `messages`", []),
        ("[{'type': 'extra_forbidden', 'loc': ('body', 'messages', 0, 'cache_control'), 'msg': 'x'}]", []),
        ("Failed to validate model spec: Unknown parameter: function.name", []),
        ('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', []),
        ("Validation: Unsupported parameter(s): `a`, `a`", ["a"]),
    ],
)
def test_rejected_params(message, params):
    assert rejected_params(message) == params


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        ("This model's maximum context length is 8192 tokens. However, you requested 32012 tokens "
         "(12 in the messages, 32000 in the completion). Please reduce the length of the messages or completion.",
         TokenLimit(context=8192, prompt=12)),
        ("'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum context length is 8192 tokens "
         "and your request has 12 input tokens (32000 > 8192 - 12).", TokenLimit(context=8192, prompt=12)),
        ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3900 `inputs` tokens and 512 "
         "`max_new_tokens`", TokenLimit(context=4096, prompt=3900)),
        ("[{'type': 'less_than_equal', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be less than or equal to 4096', "
         "'input': 32000, 'ctx': {'le': 4096}}]", TokenLimit(cap=4096)),
        ("body -> max_tokens\n  ensure this value is less than or equal to 2048 (type=value_error.number.not_le)", TokenLimit(cap=2048)),
        ("body -> max_tokens: Input should be less than or equal to 1024", TokenLimit(cap=1024)),
        ("the request exceeds the available context size, try increasing the context size", None),
        ("body -> temperature: Input should be less than or equal to 2", None),
    ],
)
def test_token_limit(message, limit):
    assert token_limit(message) == limit


def test_token_limit_fits():
    assert TokenLimit(cap=4096).fits == 4096
    assert TokenLimit(context=8192, prompt=12).fits == 8180
    assert TokenLimit().fits is None


@given(st.text(max_size=300))
def test_any_message(message):
    for name in rejected_params(message):
        assert name and name.isprintable()
    token_limit(message)
