"""End to end: what a person inspecting a repaired stream sees (project issue #4).

A real `mitmweb -s addon.py` (and `mitmdump -w` for saved flows) between a
client and the scripted upstream replaying a NIM stream. The client sends a
fake key; the stored flow must carry the repair summary as its comment, the
rewritten body, the upstream's original body, our content views, and the key
redacted, while the upstream still receives the real key.

  * mitmweb's HTTP API (Bearer auth with a random web_password): /flows,
    content views, content.data, /flows/dump, /events.
  * mitmweb's UI in headless Chromium driven over the DevTools protocol
    (browser.py): the flow list shows the comment, the response tab shows the
    "OpenAI assembled" view by default. Skips when /usr/bin/chromium is missing
    (`make test` installs it on CI).
  * `mitmdump -w`: the saved file read back with mitmproxy.io.FlowReader, with
    normalize_keep_bytes at its default, 100 and 0.

Screenshot: the Chromium test writes docs/mitmweb-assembled.png only when that
file does not exist or NORMALIZE_SCREENSHOT=1 is set (so a test run does not
dirty the tree); otherwise the shot goes to the test's tmp dir only.
`NORMALIZE_SCREENSHOT=1 .venv/bin/python -m pytest tests/e2e/test_mitmweb_e2e.py -k chromium`
refreshes it. It shows the response tab (assembled view, chosen by mitmweb), the
flow list, and the event log with the addon's summary line. For a readable
shot the machine needs CJK and emoji fonts (Debian: fonts-droid-fallback,
fonts-noto-color-emoji), or "東京 🚀" comes out as boxes; no test looks at pixels.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import struct
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from mitmproxy import http as mhttp
from mitmproxy import io as mio

from normalize.views.summary import describe
from tests.harness.proxy import MITMWEB, REPO, MitmdumpError, MitmdumpLauncher, MitmdumpProcess
from tests.harness.upstream import ScriptedUpstream

from .browser import Browser, chromium_missing
from .nim_stream import CHAT_PATH, MODEL, TEXT, nim_body
from .test_stream_e2e import EXPECTED_EVENTS, REQUEST, expected_body, serve_nim, show

pytestmark = pytest.mark.e2e

SECRET = "nvapi-test-secret"
# The client sends all three key headers the addon redacts; each holds SECRET.
KEY_HEADERS = {
    "authorization": f"Bearer {SECRET}",
    "api-key": f"{SECRET}-api-key",
    "x-api-key": f"{SECRET}-x-api-key",
}
REDACTED = {"authorization": "Bearer [redacted]", "api-key": "[redacted]", "x-api-key": "[redacted]"}

# Written by hand for the NIM stream (nim_stream.py), not computed by the code under test:
# 9 upstream events (role chunk, 6 pieces, finish chunk, [DONE]); null fields dropped:
# role chunk 5 (content, reasoning_content, tool_calls, matched_stop, usage; its content
# then comes back as ""), 6 pieces x 5 (role, reasoning_content, tool_calls, matched_stop,
# usage), finish chunk 6 (role and content too) = 41.
EXPECTED_REPAIRS = {"null_fields": 41, "content_missing_on_first_chunk": 1}
EXPECTED_EVENT_COUNT = 9
EXPECTED_COMMENT = 'normalized 9 events: 41 null fields dropped, content "" added to first chunk'

VIEWS = {"assembled": "OpenAI assembled", "sse": "OpenAI SSE", "before-after": "OpenAI before-after"}
WEB_COLUMNS = ("icon", "path", "method", "status", "size", "time", "comment")
SCREENSHOT = REPO / "docs" / "mitmweb-assembled.png"


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mitmweb:
    proc: MitmdumpProcess  # .url is the proxy
    web_url: str
    password: str

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.web_url,
            headers={"Authorization": f"Bearer {self.password}"},
            trust_env=False,
            timeout=10,
        )


def start_mitmweb(launcher: MitmdumpLauncher, upstream: ScriptedUpstream, **options: str) -> Mitmweb:
    """mitmweb with the addon, targeting `upstream`; the web UI on a free port, behind a random password.

    The proxy port comes from the OS (port 0). The web port cannot (mitmweb would
    announce ":0"), so a free one is picked, and another tried if it was taken meanwhile.
    """
    password = secrets.token_hex(16)
    for attempt in range(3):
        port = free_port()
        opts = [
            ("web_open_browser", "false"),
            ("web_host", "127.0.0.1"),
            ("web_port", str(port)),
            ("web_password", password),
            *(("web_columns", c) for c in WEB_COLUMNS),
            *options.items(),
        ]
        try:
            proc = launcher.start(program=MITMWEB, normalize_hosts=[upstream.host_port], options=opts)
        except MitmdumpError as e:
            if "Web server failed to listen" in str(e) and attempt < 2:
                continue
            raise
        # mitmweb opens the web server before the proxy, so this line is already there.
        proc.wait_for_log(rf"Web server listening at http://127\.0\.0\.1:{port}/")
        return Mitmweb(proc, f"http://127.0.0.1:{port}", password)
    raise AssertionError("unreachable")


def poll(what: str, fetch: Any, ready: Any, timeout: float = 10.0) -> Any:
    """Calls fetch() until ready(value) holds, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s; last value:\n{value!r}")
        time.sleep(0.05)


def finished_chat_flow(api: httpx.Client) -> dict[str, Any]:
    """The one chat flow in mitmweb, once the addon's response hook has run (its comment is set)."""

    def fetch() -> list[dict[str, Any]]:
        r = api.get("/flows")
        r.raise_for_status()
        return [f for f in r.json() if f["request"]["path"] == CHAT_PATH]

    flows = poll(
        "a finished chat flow with a comment",
        fetch,
        lambda fs: len(fs) == 1 and fs[0].get("response") and fs[0]["comment"],
    )
    return flows[0]


def view(api: httpx.Client, flow_id: str, name: str) -> dict[str, Any]:
    r = api.get(f"/flows/{flow_id}/response/content/{urllib.parse.quote(name.lower(), safe='')}.json")
    r.raise_for_status()
    return r.json()


def headers_of(flow_json: dict[str, Any], part: str = "request") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in flow_json[part]["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def read_flows(data: bytes | Path) -> list[mhttp.HTTPFlow]:
    """The flows in a mitmproxy flow file (a path, or its bytes)."""
    fo = open(data, "rb") if isinstance(data, Path) else io.BytesIO(data)
    with fo:
        flows = list(mio.FlowReader(fo).stream())
    assert all(isinstance(f, mhttp.HTTPFlow) for f in flows), flows
    return flows  # type: ignore[return-value]


def check_stored_flow(f: mhttp.HTTPFlow) -> None:
    """What the addon leaves on a flow it rewrote, with normalize_keep_bytes at its default."""
    assert f.comment == EXPECTED_COMMENT
    meta = f.metadata.get("normalize")
    assert isinstance(meta, dict), f.metadata
    assert meta["repairs"] == EXPECTED_REPAIRS
    assert meta["events"] == EXPECTED_EVENT_COUNT
    assert f.comment == describe(meta["repairs"], meta["events"])
    assert f.response is not None
    assert f.response.raw_content == expected_body(), show(f.response.raw_content or b"")
    assert meta["original"] == nim_body()
    for name, value in REDACTED.items():
        assert f.request.headers.get_all(name) == [value], (name, f.request.headers)


def check_upstream_got_keys(upstream: ScriptedUpstream) -> None:
    (req,) = upstream.requests
    for name, value in KEY_HEADERS.items():
        assert req.header_all(name) == [value], (name, req.headers)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    return width, height


# --------------------------------------------------------------------------- mitmweb, one flow


@dataclass
class WebSession:
    upstream: ScriptedUpstream
    web: Mitmweb
    api: httpx.Client
    flow: dict[str, Any]  # the chat flow as GET /flows lists it
    received: list[Any]  # the chunks the SDK client got


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebSession]:
    """One mitmweb, one streamed chat completion through it (openai SDK, fake key), shared by
    the tests below, which only read."""
    launcher = MitmdumpLauncher(tmp_path_factory.mktemp("mitmweb"))
    with ScriptedUpstream() as up:
        try:
            serve_nim(up)
            web = start_mitmweb(launcher, up)
            # The SDK sends Authorization: Bearer <api_key>; the other two key headers ride along.
            extra = {k: v for k, v in KEY_HEADERS.items() if k != "authorization"}
            client = openai.OpenAI(
                base_url=up.url + "/v1",
                api_key=SECRET,
                default_headers=extra,
                max_retries=0,
                timeout=15,
                http_client=httpx.Client(proxy=web.proc.url, trust_env=False),
            )
            with client, client.chat.completions.create(
                model=MODEL, messages=REQUEST["messages"], stream=True
            ) as stream:
                received = list(stream)
            with web.api() as api:
                flow = finished_chat_flow(api)
                yield WebSession(up, web, api, flow, received)
        finally:
            problems = launcher.close()
    assert not problems, problems


def test_mitmweb_client_got_the_repaired_stream(session: WebSession) -> None:
    chunks = session.received
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert chunks[0].choices[0].delta.content == ""  # the repair the comment talks about
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_mitmweb_flow_list_comment(session: WebSession) -> None:
    f = session.flow
    assert f["comment"] == EXPECTED_COMMENT
    assert f["response"]["status_code"] == 200
    # The stored body is the rewritten stream (also what /flows hashes).
    assert f["response"]["contentLength"] == len(expected_body())
    assert f["response"]["contentHash"] == hashlib.sha256(expected_body()).hexdigest()


def test_mitmweb_response_content_is_the_rewritten_stream(session: WebSession) -> None:
    r = session.api.get(f"/flows/{session.flow['id']}/response/content.data")
    r.raise_for_status()
    assert r.content == expected_body(), show(r.content)


def test_mitmweb_views_are_registered(session: WebSession) -> None:
    state = session.api.get("/state").json()
    available = {v.lower() for v in state["contentViews"]}
    assert {v.lower() for v in VIEWS.values()} <= available, state["contentViews"]


def test_mitmweb_assembled_view_is_the_default(session: WebSession) -> None:
    fid = session.flow["id"]
    auto = view(session.api, fid, "auto")
    named = view(session.api, fid, VIEWS["assembled"])
    assert auto["view_name"] == named["view_name"] == VIEWS["assembled"], (auto, named)
    assert auto["text"] == named["text"]
    lines = named["text"].splitlines()
    # The whole text the upstream sent, assembled the way openai-python assembles it.
    assert "    " + TEXT in lines, named["text"]
    for line in ("id: 8f20d6699e194a0abed38c671384d32d", f"model: {MODEL}", "choice 0",
                 "  role: assistant", "  finish_reason: stop"):
        assert line in lines, (line, named["text"])
    assert "error" not in named["text"] and named["description"] == ""


def test_mitmweb_sse_view_shows_the_rewritten_events(session: WebSession) -> None:
    got = view(session.api, session.flow["id"], VIEWS["sse"])
    assert got["view_name"] == VIEWS["sse"]
    lines = got["text"].splitlines()
    expected = ["data: " + e for e in EXPECTED_EVENTS] + ["data: [DONE]"]
    # Every rewritten event, in order, one line each (the view may add lines around them).
    at = [lines.index(e) for e in expected]
    assert at == sorted(at), got["text"]
    assert '"usage":null' not in got["text"] and '"matched_stop"' not in got["text"]


def test_mitmweb_before_after_view_marks_repairs(session: WebSession) -> None:
    got = view(session.api, session.flow["id"], VIEWS["before-after"])
    assert got["view_name"] == VIEWS["before-after"]
    text = got["text"]
    lines = text.splitlines()
    assert lines[0] == "upstream 9 events, sent 9: 1 unchanged, 8 repaired, 0 dropped, 0 added", text
    before = [line for line in lines if line.startswith("~ - ")]
    after = [line for line in lines if line.startswith("~ + ")]
    assert len(before) == len(after) == 8, text
    assert all('"usage":null' in line for line in before)  # the upstream's events...
    assert after == ["~ + data: " + e for e in EXPECTED_EVENTS]  # ...beside what was sent
    assert any('changed choices[0].delta.content null -> ""' in line for line in lines), text
    assert "    data: [DONE]" in lines  # unchanged


def test_mitmweb_dump_keeps_comment_metadata_and_bodies(session: WebSession) -> None:
    r = session.api.get("/flows/dump")
    r.raise_for_status()
    (f,) = [f for f in read_flows(r.content) if f.request.path == CHAT_PATH]
    check_stored_flow(f)


def test_mitmweb_redacts_keys_everywhere(session: WebSession) -> None:
    f = session.flow
    headers = headers_of(f)
    for name, value in REDACTED.items():
        assert headers.get(name) == [value], (name, headers)
    # The upstream got the real keys.
    check_upstream_got_keys(session.upstream)
    # The key is nowhere mitmweb shows or saves, nor in the process output.
    api = session.api
    places = {
        "/flows": api.get("/flows").content,
        "/flows/dump": api.get("/flows/dump").content,
        "/events": api.get("/events").content,
        "request content": api.get(f"/flows/{f['id']}/request/content.data").content,
        "mitmweb output": session.web.proc.log.encode(),
    }
    for name in VIEWS.values():
        places[name] = json.dumps(view(api, f["id"], name)).encode()
    for where, data in places.items():
        assert SECRET.encode() not in data, f"the key leaked into {where}"
    assert b"[redacted]" in places["/flows"] and b"[redacted]" in places["/flows/dump"]


# --------------------------------------------------------------------------- mitmweb in Chromium


def test_mitmweb_in_chromium(session: WebSession, tmp_path: Path) -> None:
    """The real UI: the comment in the flow list, the assembled view on the response tab
    (chosen by mitmweb itself: the view menu still says auto), the whole comment on the
    Comment tab, the redacted key on the Request tab."""
    if why := chromium_missing():
        pytest.skip(why)
    web = session.web
    fid = session.flow["id"]
    shot = tmp_path / "response-tab.png"

    async def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with Browser(tmp_path) as b:
            # ?token= logs in (sets mitmweb's auth cookie); the app then drops it from the URL.
            await b.goto(f"{web.web_url}/?token={web.password}#/flows")
            await b.wait_for(
                "[...document.querySelectorAll('.flow-table tbody tr')]"
                f".some(r => r.innerText.includes({json.dumps(EXPECTED_COMMENT)}))"
            )
            seen["list"] = await b.text(".flow-table")
            await b.screenshot(tmp_path / "flow-list.png")

            # The hash route is read at page load only: navigate anew (dummy query) to open a tab.
            # `e=1` opens the event log, where the addon's log line carries the whole summary
            # (the list's comment column is 150px wide: it shows only the start of it).
            await b.goto(f"{web.web_url}/?tab=response#/flows/{fid}/response?e=1")
            # No view was chosen ("View: auto"); the server picked ours: its name is the heading.
            await b.wait_for(
                "(h => h && h.innerText === " + json.dumps(VIEWS["assembled"]) + ")"
                "(document.querySelector('.contentview .controls h5'))"
            )
            await b.wait_for(
                f"(p => p && p.innerText.includes({json.dumps(TEXT)}))(document.querySelector('.contentview pre'))"
            )
            await b.wait_for(
                f"(e => e && e.innerText.includes({json.dumps(EXPECTED_COMMENT)}))(document.querySelector('.eventlog'))"
            )
            seen["controls"] = await b.text(".contentview .controls")
            seen["body"] = await b.text(".contentview pre")
            seen["page"] = await b.eval("document.body.innerText")
            seen["png"] = await b.screenshot(shot)

            # The Comment tab shows the whole comment.
            await b.goto(f"{web.web_url}/?tab=comment#/flows/{fid}/comment")
            await b.wait_for(
                f"(e => e && e.innerText === {json.dumps(EXPECTED_COMMENT)})"
                "(document.querySelector('.flow-detail .inline-input'))"
            )

            await b.goto(f"{web.web_url}/?tab=request#/flows/{fid}/request")
            await b.wait_for("document.body.innerText.includes('Bearer [redacted]')")
            seen["request"] = await b.eval("document.body.innerText")
        return seen

    seen = asyncio.run(asyncio.wait_for(drive(), 90))

    assert EXPECTED_COMMENT in seen["list"]
    assert "View: auto" in seen["controls"], seen["controls"]
    body = seen["body"].splitlines()
    assert "    " + TEXT in body and "  finish_reason: stop" in body, seen["body"]
    assert EXPECTED_COMMENT in seen["page"]  # the list stays visible above the response tab
    for text in (seen["list"], seen["page"], seen["request"]):
        assert SECRET not in text
    assert png_size(seen["png"]) == (1400, 900)

    if os.environ.get("NORMALIZE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


# --------------------------------------------------------------------------- mitmdump -w


def post_stream(proxy_url: str, target: str) -> bytes:
    """The NIM request with all three key headers, through the proxy; the raw body received."""
    with httpx.Client(proxy=proxy_url, trust_env=False, timeout=15) as c:
        with c.stream("POST", target, json=REQUEST, headers=KEY_HEADERS) as r:
            assert r.status_code == 200
            return b"".join(r.iter_raw())


def save_one_stream(
    mitmdump: MitmdumpLauncher, upstream: ScriptedUpstream, path: Path, **options: str
) -> mhttp.HTTPFlow:
    """One streamed request through `mitmdump -w path`, mitmdump stopped (which closes the
    file), and the one flow read back."""
    serve_nim(upstream)
    # flow_detail=2 prints request headers to the output, so the key check below means something.
    mitm = mitmdump.start(
        "-w", str(path), normalize_hosts=[upstream.host_port], options={"flow_detail": "2", **options}
    )
    body = post_stream(mitm.url, upstream.url + CHAT_PATH)
    assert body == expected_body(), show(body)  # whatever is kept, the client gets it all
    # The flow is written in the response hook, after the client has its last byte.
    mitm.wait_for_log(r"^ << 200 OK", timeout=10)
    assert mitm.stop() == 0, mitm.log
    (f,) = read_flows(path)
    assert SECRET.encode() not in path.read_bytes()
    assert SECRET not in mitm.log, mitm.log
    assert "authorization: Bearer [redacted]" in mitm.log, mitm.log
    check_upstream_got_keys(upstream)
    return f


def test_saved_flow_has_comment_metadata_and_bodies(
    upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path
) -> None:
    f = save_one_stream(mitmdump, upstream, tmp_path / "flows.mitm")
    check_stored_flow(f)


@pytest.mark.parametrize("keep", [100, 0])
def test_saved_flow_bodies_capped(
    upstream: ScriptedUpstream, mitmdump: MitmdumpLauncher, tmp_path: Path, keep: int
) -> None:
    f = save_one_stream(mitmdump, upstream, tmp_path / "flows.mitm", normalize_keep_bytes=str(keep))
    assert f.comment == EXPECTED_COMMENT  # the summary does not depend on what is kept
    meta = f.metadata["normalize"]
    assert meta["repairs"] == EXPECTED_REPAIRS and meta["events"] == EXPECTED_EVENT_COUNT
    assert f.response is not None
    if keep:
        # The first `keep` bytes of each, no more.
        assert f.response.raw_content == expected_body()[:keep]
        assert meta["original"] == nim_body()[:keep]
        assert len(f.response.raw_content) == len(meta["original"]) == keep
    else:
        assert not f.response.raw_content, f.response.raw_content
        assert not meta.get("original"), meta
    for name, value in REDACTED.items():
        assert f.request.headers.get_all(name) == [value]
