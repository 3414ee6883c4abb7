"""Checks of the e2e harness itself: the scripted upstream and the mitmdump launcher.

These talk to the upstream directly (no proxy), or start mitmdump with a
deliberately broken script from tmp_path, so a harness fault shows up here
rather than as a puzzling failure in the addon's tests.
"""

from __future__ import annotations

import gzip
import json
import ssl
import zlib
from pathlib import Path

import httpx
import pytest

from tests.harness.proxy import MitmdumpError, MitmdumpLauncher
from tests.harness.upstream import Gate, ScriptedUpstream

from .nim_chat import NIM_404, PROMPT_TOKENS, Call, Turn, nim_chat
from .nim_stream import CHAT_PATH, FRAMINGS, TEXT, nim_body, nim_chunks, nim_events

pytestmark = pytest.mark.e2e


def test_nim_stream_fixture_is_what_it_claims() -> None:
    chunks = nim_chunks("standard")
    assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
    # A chunk boundary inside a multi-byte character, and one inside an event.
    assert any(_splits_utf8(a) for a in chunks)
    assert any(not c.endswith(b"\n\n") for c in chunks)
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in nim_events()) == TEXT
    assert b"\r\n\r\n" in nim_body("crlf") and any(c.endswith(b"\r") for c in nim_chunks("crlf"))
    assert b"data:{" in nim_body("nospace") and b"data: {" not in nim_body("nospace")
    assert b"[DONE]" not in nim_body("no_done") and b'"stop"' not in nim_body("no_done")
    assert nim_body("ascii").isascii()
    assert len(set(FRAMINGS)) == len(FRAMINGS)


def test_nim_chat_upstream_is_what_it_claims(upstream: ScriptedUpstream) -> None:
    """Every quirk nim_chat.py's docstring promises, straight from the scripted upstream."""
    nim_chat(upstream, Turn(reasoning=["Hm"], text=["Hi"], calls=[Call("call_1", "f", ['{"a":', "1}"])]))
    ask = {"model": "m/x", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(base_url=upstream.url, timeout=10) as c:
        r = c.post(CHAT_PATH, json=ask)
        assert (r.headers["content-type"], r.headers["transfer-encoding"]) == ("text/event-stream", "chunked")
        pieces = [e + b"\n\n" for e in r.content.split(b"\n\n")[:-1]]
        assert pieces[-1] == b"data: [DONE]\n\n" and all(p.startswith(b"data: {") and p.endswith(b"}\n\n") for p in pieces[:-1])
        chunks = [json.loads(p[6:]) for p in pieces[:-1]]
        assert [list(k) for k in chunks] == [["id", "object", "created", "model", "choices", "usage"]] * len(chunks)
        assert {k["model"] for k in chunks} == {"m/x"}
        deltas = [k["choices"][0]["delta"] for k in chunks]
        assert deltas[0] == {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": None}
        assert all(d["role"] is None and list(d) == ["role", "content", "reasoning_content", "tool_calls"] for d in deltas[1:])
        calls = [d["tool_calls"][0] for d in deltas if d["tool_calls"]]
        assert calls == [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": a}} for a in ["", '{"a":', "1}"]
        ]
        assert [k["usage"]["completion_tokens"] for k in chunks] == [0, 1, 2, 2, 3, 4, 4]  # running totals
        assert {k["usage"]["prompt_tokens"] for k in chunks} == {PROMPT_TOKENS}
        assert [(k["choices"][0]["finish_reason"], k["choices"][0]["matched_stop"]) for k in chunks][-1] == ("tool_calls", None)
        unasked = c.post(CHAT_PATH, json={**ask, "stream_options": None}).content.split(b"\n\n")[:-2]
        assert {json.loads(e[6:])["usage"] is None for e in unasked} == {True}
        whole = c.post(CHAT_PATH, json={"model": "m/x", "messages": []}).json()
        assert whole["choices"][0]["message"] == {
            "role": "assistant",
            "content": "Hi",
            "reasoning_content": "Hm",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
        }
        assert whole["usage"] == {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS + 4, "completion_tokens": 4}
        refused = c.post(CHAT_PATH, json={"model": "m/x", "messages": [], "input": "x", "store": False})
        assert (refused.status_code, refused.json()["error"]["message"]) == (400, "Validation: Unsupported parameter(s): input, store")
        for path in ("/v1/responses", "/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"):
            r = c.post(path, json={})
            assert (r.status_code, r.headers["content-type"], r.content) == (404, "application/problem+json", NIM_404)


def _splits_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_chunked_reply_is_flushed_per_chunk(upstream: ScriptedUpstream) -> None:
    gate = Gate()
    upstream.reply("POST", "/s", [b"one", gate, b"two"])
    with httpx.Client(timeout=10) as c, c.stream("POST", upstream.url + "/s", content=b"x") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        it = r.iter_raw()
        assert next(it) == b"one"  # arrives while the server is still waiting on the gate
        gate.set()
        assert b"".join(it) == b"two"
    assert upstream.errors == []


def test_gate_timeout_aborts_and_is_recorded(upstream_factory) -> None:
    up = upstream_factory(gate_timeout=0.2)
    up.reply("GET", "/g", [b"a", Gate(), b"b"])
    with pytest.raises(httpx.HTTPError), httpx.Client(timeout=10) as c:
        c.get(up.url + "/g")
    assert any("gate not opened" in e for e in up.errors)
    up.reset()  # the expected error must not fail the fixture's teardown check


def test_content_length_and_close_modes(upstream: ScriptedUpstream) -> None:
    upstream.reply("GET", "/cl", [b"ab", b"cd"], mode="content-length")
    upstream.reply("GET", "/close", [b"ab", b"cd"], mode="close")
    with httpx.Client(timeout=10) as c:
        r = c.get(upstream.url + "/cl")
        assert r.headers["content-length"] == "4" and r.content == b"abcd"
        r = c.get(upstream.url + "/close")
        assert "content-length" not in r.headers and "transfer-encoding" not in r.headers
        assert r.headers["connection"] == "close" and r.content == b"abcd"


@pytest.mark.parametrize("mode", ["chunked", "content-length", "close"])
def test_gzip_mode_ignores_accept_encoding(upstream: ScriptedUpstream, mode: str) -> None:
    body = nim_body()
    upstream.reply("POST", CHAT_PATH, nim_chunks(), mode=mode, gzip=True)
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", upstream.url + CHAT_PATH, headers={"accept-encoding": "identity"}) as r:
            assert r.headers["content-encoding"] == "gzip"
            raw_pieces = list(r.iter_raw())
    raw = b"".join(raw_pieces)
    assert gzip.decompress(raw) == body
    if mode == "chunked":
        # Sync-flushed: every piece decodes as it arrives.
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        assert d.decompress(raw_pieces[0])
    assert upstream.requests[-1].header("accept-encoding") == "identity"


def test_records_requests_and_404s_unscripted(upstream: ScriptedUpstream) -> None:
    upstream.reply("POST", "/v1/x", [b"ok"])
    with httpx.Client(timeout=10) as c:
        assert c.post(upstream.url + "/v1/x?q=1", json={"a": 1}, headers={"X-Test": "1"}).content == b"ok"
        assert c.get(upstream.url + "/nope").status_code == 404
    first, second = upstream.wait_for_requests(2)
    assert (first.method, first.path, first.body) == ("POST", "/v1/x?q=1", b'{"a":1}')
    assert first.header("x-test") == "1" and first.header("X-TEST") == "1"
    assert ("X-Test", "1") in first.headers  # case as sent
    assert (second.method, second.path) == ("GET", "/nope")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_upstream_self_signed(tls_upstream: ScriptedUpstream, host: str) -> None:
    assert tls_upstream.url.startswith("https://")
    tls_upstream.reply("GET", "/t", [b"secure"])
    ctx = ssl.create_default_context(cafile=str(tls_upstream.cert_path))  # 3.13: X509_STRICT on
    with httpx.Client(verify=ctx, timeout=10) as c:
        assert c.get(f"https://{host}:{tls_upstream.port}/t").content == b"secure"


def test_launcher_reports_a_broken_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad_addon.py"
    bad.write_text("this is not python(\n")
    launcher = MitmdumpLauncher(tmp_path)
    try:
        with pytest.raises(MitmdumpError) as e:
            launcher.start(addon=bad, startup_timeout=20)
        assert "SyntaxError" in str(e.value)
        assert "bad_addon.py" in str(e.value)
    finally:
        launcher.close()


def test_launcher_reports_option_errors(tmp_path: Path) -> None:
    script = tmp_path / "opt_addon.py"
    script.write_text(
        "import collections.abc\n"
        "from mitmproxy import ctx, exceptions\n"
        "class A:\n"
        "    def load(self, loader):\n"
        "        loader.add_option('probe_hosts', collections.abc.Sequence[str], [], 'h')\n"
        "    def configure(self, updated):\n"
        "        if 'bad' in ctx.options.probe_hosts:\n"
        "            raise exceptions.OptionsError('bad host')\n"
        "        if 'probe_hosts' in updated:\n"
        "            print('probe_hosts=' + ','.join(ctx.options.probe_hosts), flush=True)\n"
        "addons = [A()]\n"
    )
    launcher = MitmdumpLauncher(tmp_path)
    try:
        # A list option given twice with --set collects both values.
        p = launcher.start("--set", "probe_hosts=a:1", "--set", "probe_hosts=b", addon=script)
        assert p.wait_for_log(r"probe_hosts=(.*)").group(1) == "a:1,b"
        assert p.ca_path.is_file() and p.port and p.running
        with pytest.raises(MitmdumpError, match="bad host"):
            launcher.start("--set", "probe_hosts=bad", addon=script)
        failed = launcher.start("--set", "probe_hosts=bad", addon=script, expect_failure=True)
        assert failed.proc.returncode != 0 and "Error logged during startup" in failed.log
    finally:
        launcher.close()
