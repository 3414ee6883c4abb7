"""The addon's mitmproxy options (`--set normalize_*`): declared once, parsed into `Settings`.

Contract: `OPTIONS` is the table of options, each with its type, default,
help text and parser; `declare(loader)` adds them in the `load` hook and
`settings(options)` builds the frozen `Settings` the core reads, raising
`OptionsError("Cannot parse <name> option: ...; expected <form>")` for a value
it cannot take (mitmweb refuses such an edit). `check_deferred` checks the
values given before the addon loaded (`--set`, config.yaml) and stops
mitmproxy at start-up on a bad one.
The README's options table lists the same options (a test checks it).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mitmproxy import exceptions
from mitmproxy.net.http import url

from ..pacing import parse_rate_limit
from ..profiles import PROFILES
from ..settings import DEFAULT_HOSTS, MiB, Settings

ListOfStrings = Sequence[str]

log = logging.getLogger("normalize")


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    type: Any
    default: Any
    help: str
    parse: Callable[[Any], Any] = lambda value: value  # raises ValueError with what is wrong
    form: str = ""  # what a good value looks like, for error messages (from the type when empty)

    @property
    def expected(self) -> str:
        return self.form or {bool: "true or false", int: "an integer"}.get(self.type, "text")


def parse_hosts(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """`host` or `host:port` (IPv6 as `[::1]:port`, or bare) -> {(host, port or None)}.

    An entry may also hold several, separated by commas (`--set normalize_hosts=a,b`)."""
    hosts: set[tuple[str, int | None]] = set()
    for entry in (part.strip() for item in entries for part in item.split(",")):
        if not entry:
            raise ValueError("empty host")
        if entry.count(":") > 1 and not entry.startswith("["):
            try:
                hosts.add((str(ipaddress.IPv6Address(entry)), None))  # a bare IPv6 address
                continue
            except ValueError:
                raise ValueError(f"{entry!r} is not host or host:port") from None
        try:
            host, port = url.parse_authority(entry, check=True)
        except ValueError:
            raise ValueError(f"{entry!r} is not host or host:port") from None
        if port == 0:
            raise ValueError(f"{entry!r} has no valid port")
        hosts.add((host.lower(), port))
    return frozenset(hosts)


def parse_model_map(entries: Iterable[str]) -> MappingProxyType[str, str]:
    """`alias=upstream-model` entries as a mapping; ValueError names the first bad entry."""
    out: dict[str, str] = {}
    for entry in entries:
        alias, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not alias or not target:
            raise ValueError(f"{entry!r} is not alias=upstream-model")
        if out.get(alias, target) != target:
            raise ValueError(f"alias {alias!r} maps to both {out[alias]!r} and {target!r}")
        out[alias] = target
    return MappingProxyType(out)


def parse_profiles(entries: Iterable[str]) -> MappingProxyType[tuple[str, int | None], str]:
    """`host[:port]=profile` entries (several may share one entry, comma-separated) as a mapping."""
    out: dict[tuple[str, int | None], str] = {}
    for entry in (part.strip() for item in entries for part in item.split(",")):
        where, sep, name = (part.strip() for part in entry.rpartition("="))
        if not sep or not where:
            raise ValueError(f"{entry!r} is not host[:port]=profile")
        if name not in PROFILES:
            raise ValueError(f"{entry!r}: no profile {name!r} (one of {', '.join(PROFILES)})")
        for host in parse_hosts([where]):
            if out.get(host, name) != name:
                raise ValueError(f"{where!r} is given both {out[host]!r} and {name!r}")
            out[host] = name
    return MappingProxyType(out)


def at_least_zero(value: int) -> int:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(repr(c) for c in choices)}")
        return value

    return parse


OPTIONS: tuple[Option, ...] = (
    Option(
        "normalize_hosts",
        ListOfStrings,
        list(DEFAULT_HOSTS),
        "Hosts whose OpenAI-compatible traffic is rewritten, as host or host:port; all other traffic passes untouched.",
        parse_hosts,
        "host or host:port ([::1]:8000 for IPv6), several comma-separated",
    ),
    Option(
        "normalize_model_map",
        ListOfStrings,
        [],
        "Model aliases as alias=upstream-model: requests for the alias go to the upstream model, "
        "replies report the alias, and /v1/models lists it.",
        parse_model_map,
        "alias=upstream-model",
    ),
    Option(
        "normalize_models",
        ListOfStrings,
        [],
        "Model ids the addon lists itself on /v1/models, without asking the upstream "
        "(for upstreams with no models endpoint; one that answers 404/405 gets the aliases alone).",
        tuple,
    ),
    Option(
        "normalize_drop_params",
        ListOfStrings,
        [],
        "Top-level chat request keys removed before the request reaches the upstream "
        "(for upstreams that reject unknown parameters, like NIM).",
        tuple,
    ),
    Option(
        "normalize_legacy_params",
        bool,
        True,
        "Send max_completion_tokens as max_tokens and developer messages as system messages, "
        "which older OpenAI-compatible servers understand.",
    ),
    Option(
        "normalize_keep_bytes",
        int,
        MiB,
        "Bytes of each rewritten stream and of the upstream's original kept on the flow for "
        "mitmweb and saved flows (each capped separately; 0 keeps nothing).",
        at_least_zero,
        "an integer, 0 or more (bytes)",
    ),
    Option(
        "normalize_max_event_bytes",
        int,
        8 * MiB,
        "An upstream event larger than this is not parsed: the rest of that stream passes through unchanged.",
        at_least_one,
        "an integer, 1 or more (bytes)",
    ),
    Option(
        "normalize_max_body_bytes",
        int,
        16 * MiB,
        "A request or whole reply body larger than this (once decoded), or one that does not decode, "
        "is not parsed: it passes through unchanged, with a log line.",
        at_least_one,
        "an integer, 1 or more (bytes)",
    ),
    Option(
        "normalize_redact_keys",
        bool,
        True,
        "Replace the authorization, api-key, x-api-key and x-goog-api-key request headers of rewritten "
        "flows with [redacted] in the stored copy (mitmweb, saved flows) once the request has gone upstream.",
    ),
    # -- reasoning and embeddings
    Option(
        "normalize_reasoning",
        str,
        "split",
        "Reasoning in chat replies: split (<think>...</think> in content sent as reasoning_content), "
        "fold (reasoning_content sent as <think>...</think> at the start of content, for clients that "
        "show only content), or keep (as the upstream sent it).",
        one_of("split", "fold", "keep"),
    ),
    Option(
        "normalize_embedding_input_type",
        str,
        "query",
        "input_type added to embedding requests that have none, for upstreams whose asymmetric models "
        "require it (NIM): query or passage; empty adds none.",
        one_of("query", "passage", ""),
    ),
    Option(
        "normalize_embedding_truncate",
        str,
        "END",
        "truncate added to embedding requests that have none, for upstreams that take it (NIM): END, START or NONE; empty adds none.",
        one_of("END", "START", "NONE", ""),
    ),
    # -- profiles, request validation, pacing (issue 14)
    Option(
        "normalize_profile",
        ListOfStrings,
        [],
        "The profile of an upstream, as host[:port]=name, where the one chosen by its host name is "
        "not right (e.g. 127.0.0.1:8000=vllm); profiles: " + ", ".join(PROFILES) + ".",
        parse_profiles,
        "host[:port]=profile (e.g. 127.0.0.1:8000=vllm), several comma-separated; profiles: " + ", ".join(PROFILES),
    ),
    Option(
        "normalize_default_max_tokens",
        int,
        0,
        "max_tokens sent on chat requests that give none (0: off), for upstreams whose own default "
        "is too low (NIM's thinking models stop with finish_reason length on 'hi').",
        at_least_zero,
    ),
    Option(
        "normalize_rate_limit",
        str,
        "",
        "At most this many requests per API key reach the upstream in any window, e.g. 40/60s; "
        "the rest wait their turn in the proxy (off when empty).",
        parse_rate_limit,
        "requests/window, e.g. 40/60s, 40/1m or 5/s (empty: off)",
    ),
    # -- the bridges
    Option(
        "normalize_responses",
        str,
        "bridge",
        "bridge: OpenAI Responses API requests (POST .../responses) go upstream as chat completions and "
        "are answered as Responses; pass: they go as they are (for upstreams that serve /v1/responses).",
        one_of("bridge", "pass"),
    ),
    Option(
        "normalize_responses_store_bytes",
        int,
        64 * MiB,
        "Bytes of bridged responses kept in memory (least recently used dropped first) for "
        "previous_response_id and GET/DELETE /v1/responses/{id}; 0 keeps none.",
        at_least_zero,
    ),
    Option(
        "normalize_messages",
        str,
        "bridge",
        "Anthropic Messages requests (POST .../v1/messages, as Claude Code and the Anthropic SDKs send them): "
        "bridge = translated onto the upstream's chat completions and answered in Anthropic's shapes; "
        "pass = sent on untouched, for upstreams that serve the Messages API themselves.",
        one_of("bridge", "pass"),
    ),
)
# Which Settings field each option fills.
FIELDS = {option.name: option.name.removeprefix("normalize_") for option in OPTIONS}


def declare(loader: Any) -> None:
    for option in OPTIONS:
        loader.add_option(option.name, option.type, option.default, option.help)


def settings(options: Any) -> Settings:
    """The core's Settings from mitmproxy's options; OptionsError names the option that is wrong."""
    values = {}
    for option in OPTIONS:
        try:
            values[FIELDS[option.name]] = option.parse(getattr(options, option.name))
        except ValueError as e:
            raise exceptions.OptionsError(problem(option, e)) from e
    return Settings(**values)


def problem(option: Option, error: Exception) -> str:
    return f"Cannot parse {option.name} option: {error}; expected {option.expected}"


# -- values given before the addon loaded --------------------------------------
#
# mitmproxy loads a script after it has read `--set` and config.yaml, so values
# for the script's options wait in `options.deferred` until the script declares
# them. Converting them then happens inside the script's registration: a value
# mitmproxy cannot convert (an int option given "abc") makes the script fail to
# load without a word, and the proxy would run without the addon. So the addon
# checks those values itself, in its load hook, before mitmproxy converts them.


def deferred_problems(deferred: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with the values waiting for the addon's options, by option name."""
    out = {}
    for option in OPTIONS:
        if option.name not in deferred:
            continue
        try:
            option.parse(convert(option, deferred[option.name]))
        except ValueError as e:
            out[option.name] = problem(option, e)
    return out


def convert(option: Option, value: Any) -> Any:
    """A waiting value as mitmproxy will convert it: from `--set` strings (as its
    OptManager does), or already typed (config.yaml). ValueError says what is wrong."""
    strings = getattr(value, "val", None)  # mitmproxy's unconverted --set strings
    if isinstance(strings, list):
        if option.type is ListOfStrings:
            return list(strings)
        if len(strings) > 1:
            raise ValueError(f"given {len(strings)} times ({', '.join(map(repr, strings))})")
        text = strings[0] if strings else None
        if option.type is bool:
            if text is None or text == "true":
                return True
            if text == "false":
                return False
            if text == "toggle":
                return not option.default
            raise ValueError(f"{text!r} is not true or false")
        if option.type is int:
            try:
                return int(text or "")
            except ValueError:
                raise ValueError(f"{text!r} is not an integer") from None
        return text
    if option.type is bool and not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    if option.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{value!r} is not an integer")
    if option.type is ListOfStrings and not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{value!r} is not a list of strings")
    return value


def check_deferred(options: Any, starting: bool) -> None:
    """At start-up, a bad waiting value stops mitmproxy at once, naming the option and the
    form it takes (the proxy must never run without the addon the user asked for). Later
    (the script added or reloaded in a running mitmproxy), bad values are dropped with an
    error in the log, and the options keep their defaults."""
    deferred = getattr(options, "deferred", None)
    if not isinstance(deferred, dict):
        return
    problems = deferred_problems(deferred)
    if not problems:
        return
    if starting:
        for message in problems.values():
            print(f"openai-normalize: {message}", file=sys.stderr, flush=True)
        print("openai-normalize: not starting the proxy without the addon; fix the option above.", file=sys.stderr, flush=True)
        sys.exit(2)
    for name, message in problems.items():
        log.error("%s; the option keeps its default", message)
        del deferred[name]
