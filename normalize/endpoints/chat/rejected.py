"""What an upstream's rejection of a chat request says was wrong with it, read from its message.

Contract: `rejected_params(message)` gives the request parameters the
message says the upstream does not accept, as paths (`prompt_cache_key`, or
`tools[].function.strict` for a key of every tool's function), in the order
named, without repeats; parameters whose removal would change what was asked
(`PROTECTED`) and nested paths other than a tool function's keys are left
out. `token_limit(message)` reads a rejected `max_tokens`: the model's cap
for it, or its context length and the prompt's tokens; `context_exceeded`
says whether the request did not fit the model's context. All read the
message of the error once it is OpenAI's shape (errors.py), so each
upstream's wording is one pattern here, whatever its body looked like.
Pure, linear in the message (which errors.py caps at MAX_MESSAGE for text
bodies; JSON messages are read at most `MAX_READ` characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_READ = 16 * 1024
# Removing these would answer a different question than the one asked; the error stands.
PROTECTED = frozenset(
    {"model", "messages", "stream", "tools", "tool_choice", "functions", "function_call", "response_format", "n"}
    | {"max_tokens", "max_completion_tokens"}  # lowered instead (token_limit)
)
TOOL_FUNCTION = "tools[].function."
_NAME = r"[A-Za-z_][\w\-]*"

# NIM: "Validation: Unsupported parameter(s): `prompt_cache_key`" (OmniRoute #848), unquoted
# ("... reasoning_budget", free-claude-code #127), several comma-separated.
_UNSUPPORTED_LIST = re.compile(r"Unsupported parameter\(s\):\s*([^\n]*)")
# NIM via Codex fields: "Unsupported parameter: client_metadata" (9router #1887);
# NIM's 401: "Unknown parameter: function.strict" (charmbracelet/crush #2472).
_ONE = re.compile(r"(?:Unsupported|Unknown) parameter:\s*['\"`]?(" + _NAME + r"(?:\." + _NAME + r")*)")
# pydantic 2's errors as NIM repeats them: "{'type': 'extra_forbidden', 'loc': ('body', 'x'), ..."
# (sipeed/picoclaw #1019), or FastAPI's JSON detail ("loc": ["body", "x"]).
_EXTRA = re.compile(r"""['"]type['"]:\s*['"]extra_forbidden['"],\s*['"]loc['"]:\s*[(\[]([^)\]]*)[)\]]""")
# pydantic 1 as NIM's 422 says it: "body -> frequency_penalty\n  Extra inputs are not permitted"
# (BerriAI/litellm #4558, Kilo-Org/kilocode #9652), or errors.py's "body -> x: Extra inputs ...".
_ARROWS = re.compile(r"body((?: -> [\w\-]+)+):?\s*Extra inputs are not permitted")
# Gemini: 'Unknown name "web_search_options": Cannot find field.' (PromptFuzz #42), nested
# ones with "at 'tools[0].function'".
_GEMINI = re.compile(r"Unknown name \"(" + _NAME + r")\"(?: at '([^']*)')?: Cannot find field")
# Groq: "property 'stream_options' is unsupported, did you mean 'stream'?" (vercel/ai #1651).
_GROQ = re.compile(r"property '(" + _NAME + r")' is unsupported")

# vLLM: "This model's maximum context length is 8192 tokens. However, you requested 32012 tokens
# (12 in the messages, 32000 in the completion)" (vllm #12886), and its newer wording
# "... maximum context length is 8192 tokens and your request has 12 input tokens".
_CONTEXT = re.compile(
    r"maximum context length is (\d+) tokens(?:\. However, you requested \d+ tokens \((\d+) in the messages"
    r"| and your request has (\d+) input tokens)"
)
# TGI: "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3900 `inputs` tokens and ..."
_TGI = re.compile(r"`inputs` tokens \+ `max_new_tokens` must be <= (\d+)\. Given: (\d+) `inputs` tokens")
# pydantic's le constraint on the parameter: "'loc': ('body', 'max_tokens'), 'msg': 'Input should
# be less than or equal to 4096'", or "body -> max_tokens\n  ensure this value is less than or equal to 4096".
_CAP = re.compile(
    r"max_(?:completion_)?tokens\b[^{}\n]{0,200}?less than or equal to (\d+)|max_(?:completion_)?tokens\b\W*\n[^\n]*less than or equal to (\d+)"
)


@dataclass(frozen=True, slots=True)
class TokenLimit:
    cap: int | None = None  # the largest max_tokens the model takes
    context: int | None = None  # the model's context length ...
    prompt: int | None = None  # ... and this request's prompt tokens

    @property
    def fits(self) -> int | None:
        """The largest max_tokens that fits this request."""
        if self.cap is not None:
            return self.cap
        if self.context is not None and self.prompt is not None:
            return self.context - self.prompt
        return None


def rejected_params(message: str) -> list[str]:
    text = message[:MAX_READ]
    found: list[str] = []
    for match in _UNSUPPORTED_LIST.finditer(text):
        found += [name for name in (part.strip(" `'\"") for part in match.group(1).split(",")) if re.fullmatch(_NAME, name)]
    found += [match.group(1) for match in _ONE.finditer(text)]
    found += [path(match.group(1).split(",")) for match in _EXTRA.finditer(text)]
    found += [path(["body", *match.group(1).split(" -> ")[1:]]) for match in _ARROWS.finditer(text)]
    for match in _GEMINI.finditer(text):
        where = match.group(2)
        found.append(match.group(1) if not where else gemini_path(where, match.group(1)))
    found += [match.group(1) for match in _GROQ.finditer(text)]
    out: list[str] = []
    for name in (learnable(f) for f in found):
        if name and name not in out:
            out.append(name)
    return out


def path(loc: list[str]) -> str:
    """A pydantic `loc` (`body`, then keys and indexes) as a dotted path without the indexes."""
    parts = [part.strip().strip("'\"") for part in loc]
    if not parts or parts[0] != "body":
        return ""
    return ".".join(part for part in parts[1:] if part and not part.isdigit())


def gemini_path(where: str, name: str) -> str:
    return re.sub(r"\[\d+\]", "", where) + "." + name


def learnable(name: str) -> str:
    """The path under which a rejected parameter is learned; "" for one that is not learned."""
    if name.startswith("function.") or name.startswith("tools.function."):
        key = name.rsplit(".", 1)[1]
        return TOOL_FUNCTION + key if key not in ("name", "parameters") else ""
    if "." in name or name in PROTECTED:
        return ""
    return name


def token_limit(message: str) -> TokenLimit | None:
    text = message[:MAX_READ]
    if match := _CONTEXT.search(text):
        return TokenLimit(context=int(match.group(1)), prompt=int(match.group(2) or match.group(3)))
    if match := _TGI.search(text):
        return TokenLimit(context=int(match.group(1)), prompt=int(match.group(2)))
    if match := _CAP.search(text):
        return TokenLimit(cap=int(match.group(1) or match.group(2)))
    return None


# llama.cpp's server: "the request exceeds the available context size, try increasing it".
_CONTEXT_SIZE = re.compile(r"exceeds the available context size")


def context_exceeded(message: str) -> bool:
    """The message says the request does not fit the model's context (not a cap on max_tokens)."""
    limit = token_limit(message)
    return (limit is not None and limit.context is not None) or _CONTEXT_SIZE.search(message[:MAX_READ]) is not None
