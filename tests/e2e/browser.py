"""Headless Chromium, driven over the Chrome DevTools Protocol (CDP), for e2e tests.

Nothing beyond what the venv has: the DevTools WebSocket is spoken with
tornado's websocket client (tornado comes with mitmproxy), and Chromium is the
system one (`/usr/bin/chromium`, Debian's package; `make test` installs it on CI).

    async with Browser(workdir) as b:
        await b.goto("http://127.0.0.1:8081/?token=...#/flows")
        await b.wait_for("document.querySelectorAll('.flow-table tbody tr').length >= 1")
        text = await b.eval("document.body.innerText")
        await b.screenshot(path)

Chromium is started with `--remote-debugging-port=0`; the port it picked is read
from `DevToolsActivePort` in its fresh profile directory. Every wait is a poll
with a deadline, and every CDP reply is awaited with a timeout, so a hung or
crashed browser fails the test instead of hanging it. Chromium's own output goes
to `<workdir>/chromium.log`, which the errors quote.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = ["CHROMIUM", "Browser", "BrowserError", "chromium_missing"]

CHROMIUM = Path("/usr/bin/chromium")


class BrowserError(AssertionError):
    """Chromium did not start, died, or a page never reached the state waited for."""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"{CHROMIUM} is missing: the mitmweb browser test needs Debian's chromium "
            "package (`make test` installs it when run as root with apt-get)"
        )
    return None


class Browser:
    """One headless Chromium with one page, used as an async context manager."""

    def __init__(self, workdir: Path, *, width: int = 1400, height: int = 900, timeout: float = 10.0) -> None:
        self.workdir = workdir
        self.width, self.height = width, height
        self.timeout = timeout  # default for each CDP reply and each wait_for
        self.profile = workdir / "chromium-profile"
        self.log_path = workdir / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: WebSocketClientConnection | None = None
        self._ids = itertools.count(1)

    # -- lifecycle --
    async def __aenter__(self) -> Browser:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, startup_timeout: float = 30.0) -> None:
        self.profile.mkdir(parents=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(CHROMIUM),
                    "--headless",
                    "--no-sandbox",  # CI runs as root, where the sandbox refuses to start
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--disable-quic",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                    f"--user-data-dir={self.profile}",
                    f"--window-size={self.width},{self.height}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
            )
        port = await self._devtools_port(startup_timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as r:
            targets = json.load(r)
        page = next((t for t in targets if t.get("type") == "page"), None)
        if page is None:
            raise BrowserError(f"Chromium has no page target: {targets}")
        self.ws = await asyncio.wait_for(
            websocket_connect(page["webSocketDebuggerUrl"], max_message_size=256 * 2**20), self.timeout
        )
        # New headless counts invisible window decorations in --window-size; pin the viewport.
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def _devtools_port(self, timeout: float) -> int:
        # With port 0, Chromium writes "<port>\n<browser ws path>\n" once it listens.
        portfile = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = portfile.read_text()
            except FileNotFoundError:
                text = ""
            if text.count("\n") >= 1 and text.split()[0].isdigit():
                return int(text.split()[0])
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BrowserError(f"Chromium exited with code {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise BrowserError(f"Chromium wrote no DevToolsActivePort within {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    # -- protocol --
    async def send(self, method: str, timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """Sends one CDP command and returns its result (events in between are skipped)."""
        if self.ws is None:
            raise BrowserError("not connected")
        i = next(self._ids)
        await self.ws.write_message(json.dumps({"id": i, "method": method, "params": params}))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no reply to {method} in time")
            raw = await asyncio.wait_for(self.ws.read_message(), remaining)
            if raw is None:
                raise BrowserError(f"DevTools connection closed during {method}:\n{self.log()}")
            msg = json.loads(raw)
            if msg.get("id") == i:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg["result"]

    async def eval(self, expression: str) -> Any:
        """Evaluates JavaScript in the page (promises awaited); returns the value as JSON."""
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"JavaScript error in {expression!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, condition: str, timeout: float | None = None) -> None:
        """Polls a JavaScript condition until it is truthy; on timeout, the page text is in the error."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if await self.eval(f"!!({condition})"):
                return
            if time.monotonic() > deadline:
                text = await self.eval("document.body ? document.body.innerText : '(no body)'")
                raise BrowserError(f"not true within {timeout}s: {condition}\npage text:\n{text}")
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        """Navigates and waits until the new document has loaded.

        mitmweb reads its hash route (`#/flows/<id>/response`) only at page load,
        so to change it, change something before the `#` too (a dummy query).
        """
        r = await self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise BrowserError(f"navigating to {url}: {r['errorText']}")
        await self.wait_for("document.readyState === 'complete'")

    async def text(self, selector: str) -> str:
        """innerText of the first element matching a CSS selector (BrowserError if none)."""
        value = await self.eval(f"(e => e ? e.innerText : null)(document.querySelector({json.dumps(selector)}))")
        if value is None:
            raise BrowserError(f"no element matches {selector!r}")
        return value

    async def screenshot(self, path: Path | None = None) -> bytes:
        """A PNG of the viewport; also written to `path` when given."""
        r = await self.send("Page.captureScreenshot", format="png")
        png = base64.b64decode(r["data"])
        if path is not None:
            path.write_bytes(png)
        return png
