"""Runs `mitmdump -s addon.py` as a subprocess on a loopback port for e2e tests.

Readiness is read from mitmdump's own output (the "... listening at HOST:PORT."
line), with a bounded deadline; nothing sleeps. mitmdump is started with
`--listen-port 0`, and the port the OS picked is parsed from that line, so
there is no window in which another process can take a pre-chosen port.

mitmdump logs a script's import error or an OptionsError raised in its
`configure` hook *before* the "listening at" line, then exits on its own
("Error logged during startup, exiting..."). So a start counts as failed when
the output up to that line holds such an error, even if the listening line
came.

The same launcher starts mitmweb (`start(program=MITMWEB, ...)`): it prints the
same "proxy listening at" line, after its "Web server listening at" line, so a
mitmweb that returned from `start` serves its web UI too.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "ADDON",
    "MITMDUMP",
    "MITMWEB",
    "MitmdumpError",
    "MitmdumpLauncher",
    "MitmdumpProcess",
    "client_env",
]

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "addon.py"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
MITMWEB = Path(sys.executable).parent / "mitmweb"

PROXY_ENV_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)

_LISTENING = re.compile(r"listening at (?P<addr>\S+?):(?P<port>\d+)\.?\s*$")
# What mitmdump prints for a script that fails to import/configure/load.
_STARTUP_ERROR = re.compile(
    r"error in script|Traceback \(most recent call last\)|No such script|"
    r"Error logged during startup|OptionsError"
)


class MitmdumpError(AssertionError):
    """mitmdump did not start (or misbehaved); the message carries its output."""


def client_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment with no proxy settings (for the mitmdump subprocess)."""
    env = dict(os.environ if base is None else base)
    for k in PROXY_ENV_VARS:
        env.pop(k, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class MitmdumpProcess:
    """One running mitmdump. Created by `MitmdumpLauncher.start`."""

    host = "127.0.0.1"

    def __init__(self, argv: list[str], confdir: Path, cwd: Path) -> None:
        self.argv = argv
        self.confdir = confdir
        self.port: int | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=client_env(),
        )
        self._reader = threading.Thread(
            target=self._read, name=f"mitmdump-reader:{self.proc.pid}", daemon=True
        )
        self._reader.start()

    # -- output capture --
    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
                self._queue.put(line)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            self._queue.put(None)

    @property
    def log(self) -> str:
        """Everything mitmdump printed so far (stdout and stderr), one string."""
        with self._cond:
            return "\n".join(self._lines)

    @property
    def log_lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 5.0) -> re.Match[str]:
        """Waits (bounded) until a printed line matches `pattern` (re.search)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for line in self._lines[checked:]:
                    if m := rx.search(line):
                        return m
                checked = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise MitmdumpError(
                        f"no mitmdump output line matched {rx.pattern!r} within {timeout}s "
                        f"(exited: {self._eof}); output:\n{self.log_unlocked()}"
                    )
                self._cond.wait(remaining)

    def log_unlocked(self) -> str:
        return "\n".join(self._lines)

    # -- startup / shutdown --
    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_start(f"no 'listening at' line within {timeout}s")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue  # the deadline check above ends the loop
            if line is None:
                self.proc.wait(timeout=5)
                self._fail_start(f"mitmdump exited with code {self.proc.returncode}")
            seen.append(line)
            m = _LISTENING.search(line)
            if m:
                if any(_STARTUP_ERROR.search(s) for s in seen):
                    self._fail_start("mitmdump logged an error during startup")
                self.port = int(m.group("port"))
                return

    def _fail_start(self, why: str) -> None:
        self.stop()
        raise MitmdumpError(f"{why}.\ncommand: {self.argv}\noutput:\n{self.log}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        """For a start expected to fail: waits (bounded) for the process to end."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    # -- addresses --
    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: the proxy URL in regular mode, the base URL in reverse mode."""
        return f"http://{self.host}:{self.port}"

    proxy_url = url

    @property
    def ca_path(self) -> Path:
        """mitmproxy's CA certificate (PEM), created in confdir at startup."""
        return self.confdir / "mitmproxy-ca-cert.pem"


class MitmdumpLauncher:
    """Starts mitmdump processes and stops all of them at `close()`."""

    def __init__(self, tmp_root: Path, *, addon: Path = ADDON, cwd: Path = REPO) -> None:
        self.tmp_root = tmp_root
        self.addon = addon
        self.cwd = cwd
        self.processes: list[MitmdumpProcess] = []

    def start(
        self,
        *args: str,
        mode: str | None = None,
        normalize_hosts: Sequence[str] | None = None,
        ssl_insecure: bool = False,
        options: dict[str, str] | Iterable[tuple[str, str]] = (),
        addon: Path | str | None = None,
        confdir: Path | None = None,
        startup_timeout: float = 20.0,
        expect_failure: bool = False,
        program: Path | str = MITMDUMP,
    ) -> MitmdumpProcess:
        """Starts mitmdump and returns once it listens.

        `normalize_hosts` becomes one `--set normalize_hosts=X` per entry (that is
        how mitmproxy 12 takes a list option: each `--set` appends; `a,b` would be
        a single entry "a,b"). `options` are more `--set k=v`; `args` go last.
        With `expect_failure`, waits for the process to exit instead and returns
        it (check `.proc.returncode` and `.log`). `program` is the executable:
        mitmdump, or MITMWEB for mitmweb (which takes the same arguments).
        """
        if confdir is None:
            confdir = self.tmp_root / f"mitm-conf-{len(self.processes)}"
        confdir.mkdir(parents=True, exist_ok=True)
        script = Path(addon) if addon is not None else self.addon
        argv = [
            str(program),
            "-s",
            str(script),
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={confdir}",
        ]
        if mode is not None:
            argv += ["--mode", mode]
        for h in normalize_hosts or ():
            argv += ["--set", f"normalize_hosts={h}"]
        if ssl_insecure:
            argv += ["--set", "ssl_insecure=true"]
        items = options.items() if isinstance(options, dict) else options
        for k, v in items:
            argv += ["--set", f"{k}={v}"]
        argv += list(args)

        if not expect_failure and not script.exists():
            raise MitmdumpError(f"addon script {script} does not exist")
        p = MitmdumpProcess(argv, confdir, self.cwd)
        self.processes.append(p)
        if expect_failure:
            try:
                p.wait_exit(startup_timeout)
            except subprocess.TimeoutExpired:
                p.stop()
                raise MitmdumpError(
                    f"mitmdump was expected to fail but is still running.\noutput:\n{p.log}"
                ) from None
            return p
        p.wait_ready(startup_timeout)
        return p

    __call__ = start

    def close(self) -> list[str]:
        """Stops every process; returns complaints about ones that died on their own."""
        problems = []
        for p in self.processes:
            died_early = p.proc.poll() is not None
            code = p.stop()
            if died_early and code not in (0, None) and p.port is not None:
                problems.append(
                    f"mitmdump (port {p.port}) exited by itself with code {code}; output:\n{p.log}"
                )
        self.processes.clear()
        return problems


def shared_rig(name: str, *, fixture: str = "rig", reverse: bool = False, options: dict[str, str] | None = None):
    """Fixtures for one scripted upstream and one mitmdump targeting it, shared by a
    test module: `_rig, rig = shared_rig("name")` (with `fixture="x"`, `_x, x = ...`).
    `_rig` starts them once per module (`reverse`: in reverse mode to the upstream;
    `options`: more mitmproxy options); `rig` hands them to each test with the
    upstream reset, checks mitmdump still runs, and fails the test on an upstream
    handler crash (check_no_crash) or a traceback in mitmdump's output during it."""
    import pytest

    from .upstream import ScriptedUpstream, check_no_crash

    @pytest.fixture(scope="module", name="_" + fixture)
    def _rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScriptedUpstream, MitmdumpProcess]]:
        launcher = MitmdumpLauncher(tmp_path_factory.mktemp(name))
        with ScriptedUpstream() as up:
            try:
                mode = f"reverse:{up.url}" if reverse else None
                yield up, launcher.start(mode=mode, normalize_hosts=[up.host_port], options=options or {})
            finally:
                problems = launcher.close()
        assert not problems, problems

    @pytest.fixture(name=fixture)
    def rig(request: pytest.FixtureRequest) -> Iterator[tuple[ScriptedUpstream, MitmdumpProcess]]:
        up, mitm = request.getfixturevalue("_" + fixture)
        up.reset()
        assert mitm.running, f"shared mitmdump died; output:\n{mitm.log}"
        before = len(mitm.log)
        yield up, mitm
        check_no_crash(up)
        assert "Traceback" not in mitm.log[before:], mitm.log[before:]

    return _rig, rig
