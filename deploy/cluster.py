"""`make cluster`: N `mitmdump -s addon.py` replicas behind HAProxy, sticky per API key.

    python -m deploy.cluster [--replicas N] [--upstream URL] [--listen-host H] [--port P]
                             [--base-port B] [--run-dir DIR] [--print-config] [-- MITMDUMP ARGS...]

Starts N mitmdumps in reverse mode to the upstream on 127.0.0.1, ports B, B+1,
..., each with the addon, then HAProxy on H:P in front of them with the
configuration of deploy/haproxy.py; returns to waiting once every replica
answers its health check and HAProxy counts them all up. Ctrl-C, SIGTERM or
SIGHUP stop everything it started (HAProxy first, so no new request reaches a
replica that is going). A replica that dies is left down: HAProxy sends its
keys to the others; restarting it is the job of whatever runs this (systemd,
a container runtime). If HAProxy dies, everything stops, with exit code 1.

The replicas run with `connection_strategy=lazy`: with mitmproxy's default
(eager), reverse mode dials the upstream as soon as a client connects, before
the request is read, so every health check would also open a connection to
the upstream, and an upstream that is down would fail the checks of every
replica at once: HAProxy would mark them all down and answer 503 itself,
hiding the upstream's own error. Lazy, the addon answers /normalize/health
without the upstream, and the check says what it should: this replica is up.
`dumper_filter` keeps health checks out of each replica's flow log.

HAProxy's log (one line per request: the replica, a short hash of the key,
method and path) goes to this terminal; each replica's own output goes to
RUN_DIR/replica-I.log, with RUN_DIR/haproxy.cfg and HAProxy's stats socket
RUN_DIR/haproxy.sock beside it.

A Python module rather than a shell script: the configuration is written by
the same code the tests check (deploy/haproxy.py), readiness is waited for
with deadlines, and every child is ended on any way out, which in shell takes
traps and `wait -n` bookkeeping.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from deploy import haproxy

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "addon.py"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
DEFAULT_UPSTREAM = "https://integrate.api.nvidia.com"
# What every replica gets besides its mode and port (see the module's comment).
REPLICA_OPTIONS = (("connection_strategy", "lazy"), ("dumper_filter", f"!(~u {haproxy.HEALTH_PATH})"))
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class ClusterError(Exception):
    pass


def target_host(upstream: str) -> str:
    """The upstream as `normalize_hosts` takes it: `host`, or `host:port` when the URL gives a port."""
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClusterError(f"--upstream must be an http:// or https:// URL, not {upstream!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}" if parts.port else host


def replica_argv(upstream: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    argv = [str(MITMDUMP), "-s", str(ADDON), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1"]
    argv += ["--listen-port", str(port), "--set", f"normalize_hosts={target_host(upstream)}"]
    for name, value in REPLICA_OPTIONS:
        argv += ["--set", f"{name}={value}"]
    return argv + list(extra)


def die_with_parent() -> None:
    """Children get SIGTERM if the launcher dies without cleaning up (even on SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None = None
    reported: bool = False

    def tail(self, lines: int = 20) -> str:
        if self.log is None:
            return ""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """The processes of one cluster; `stop()` ends every one it started."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir: Path = args.run_dir
        self.replicas: list[Child] = []
        self.haproxy: Child | None = None

    @property
    def ports(self) -> list[int]:
        return [self.args.base_port + i for i in range(self.args.replicas)]

    @property
    def socket(self) -> Path:
        return self.run_dir / "haproxy.sock"

    def config(self) -> str:
        servers = [f"127.0.0.1:{port}" for port in self.ports]
        return haproxy.config(f"{self.args.listen_host}:{self.args.port}", servers, stats_socket=self.socket)

    def spawn(self, name: str, argv: Sequence[str], log: Path | None) -> Child:
        """A child writing to `log` (appended), or to this terminal when None."""
        with open(log, "ab") if log is not None else contextlib.nullcontext() as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                preexec_fn=die_with_parent,
            )
        return Child(name, proc, log)

    def start(self) -> None:
        args = self.args
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.run_dir / "haproxy.cfg"
        cfg.write_text(self.config())
        haproxy.check(cfg)
        for i, port in enumerate(self.ports, 1):
            log = self.run_dir / f"replica-{i}.log"
            self.replicas.append(self.spawn(f"replica{i} (127.0.0.1:{port})", replica_argv(args.upstream, port, args.mitmdump), log))
        deadline = time.monotonic() + START_TIMEOUT_S
        for child, port in zip(self.replicas, self.ports, strict=True):
            wait_healthy(child, port, deadline)
        self.haproxy = self.spawn("haproxy", [haproxy.executable(), "-db", "-f", str(cfg)], None)
        want = {f"replica{i}" for i in range(1, args.replicas + 1)}
        haproxy.wait_states(
            self.socket,
            lambda states: {name for name, status in states.items() if status == "UP"} >= want,
            timeout=max(1.0, deadline - time.monotonic()),
            alive=lambda: self.haproxy is not None and self.haproxy.proc.poll() is None,
        )

    def watch(self) -> int:
        """Waits for children to end; returns when HAProxy has (1) or every replica has (1)."""
        assert self.haproxy is not None
        while True:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)  # a child ended: poll() below reaps it
            if self.haproxy.proc.poll() is not None:
                say(f"haproxy exited with code {self.haproxy.proc.returncode}; stopping the replicas")
                return 1
            for child in self.replicas:
                if child.proc.poll() is not None and not child.reported:
                    child.reported = True
                    say(
                        f"{child.name} exited with code {child.proc.returncode}; HAProxy marks it down and sends "
                        f"its keys to the others. Its log: {child.log}"
                    )
            if all(child.reported for child in self.replicas):
                say("no replica left")
                return 1

    def stop(self) -> None:
        """HAProxy first, so that no new request goes to a replica that is going; then the replicas."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for group in ([self.haproxy] if self.haproxy else [], self.replicas):
            for child in group:
                if child.proc.poll() is None:
                    child.proc.terminate()
            for child in group:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(5)


def wait_healthy(child: Child, port: int, deadline: float) -> None:
    """Asks the replica for /normalize/health until it answers 200, or the deadline passes, or it exits."""
    why = "no answer"
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise ClusterError(f"{child.name} exited with code {child.proc.returncode}:\n{child.tail()}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", haproxy.HEALTH_PATH)
            response = conn.getresponse()
            if response.status == 200:
                return
            why = f"health check answered {response.status}"
        except OSError as e:
            why = str(e)
        finally:
            conn.close()
        time.sleep(0.1)  # mitmdump says nothing when it is ready but a line in its log: ask again
    raise ClusterError(f"{child.name} did not answer {haproxy.HEALTH_PATH} within {START_TIMEOUT_S:g} s ({why}):\n{child.tail()}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` go to every mitmdump, e.g. -- --set normalize_drop_params=frequency_penalty",
    )
    parser.add_argument("--replicas", "-n", type=int, default=len(os.sched_getaffinity(0)), help="mitmdumps to run (default: one per core)")
    parser.add_argument("--upstream", default=DEFAULT_UPSTREAM, help=f"the upstream's base URL (default {DEFAULT_UPSTREAM})")
    parser.add_argument("--listen-host", default="127.0.0.1", help="where HAProxy listens (default 127.0.0.1; 0.0.0.0 for the team)")
    parser.add_argument("--port", type=int, default=8080, help="HAProxy's port (default 8080)")
    parser.add_argument("--base-port", type=int, help="the first replica's port on 127.0.0.1 (default: --port + 1)")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="where the config, the stats socket and replica logs go (default: a directory in /tmp named after the port)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the HAProxy configuration and exit")
    parser.add_argument("mitmdump", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 256:
        parser.error("--replicas must be between 1 and 256")
    if args.base_port is None:
        args.base_port = args.port + 1
    ports = range(args.base_port, args.base_port + args.replicas)
    if args.port in ports or not (0 < args.port < 65536 and ports[0] > 0 and ports[-1] < 65536):
        parser.error("--port and the replicas' ports (--base-port, one per replica) must be distinct ports")
    if args.run_dir is None:
        args.run_dir = Path(tempfile.gettempdir()) / f"normalize-cluster-{args.port}"
    try:
        target_host(args.upstream)
    except ClusterError as e:
        parser.error(str(e))
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = Cluster(args)
    if args.print_config:
        print(cluster.config(), end="")
        return 0
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        say(
            f"HAProxy {haproxy.version()}, {args.replicas} replicas on 127.0.0.1:{cluster.ports[0]}-{cluster.ports[-1]}, upstream {args.upstream}"
        )
        cluster.start()
        say(
            f"ready: base URL http://{args.listen_host}:{args.port}/v1, {args.replicas} replicas up; "
            f"replica logs and haproxy.cfg in {args.run_dir}; Ctrl-C stops"
        )
        return cluster.watch()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except (ClusterError, haproxy.HAProxyError) as e:
        say(f"failed: {e}")
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
