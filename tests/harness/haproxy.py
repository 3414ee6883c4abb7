"""Runs HAProxy, configured by deploy/haproxy.py, in front of replicas the test started.

`HAProxyProcess(run_dir, servers, checks=FAST)` binds a listening socket on
127.0.0.1 port 0 itself and hands it to HAProxy (`bind fd@N`), so the port is
known before HAProxy starts and no other process can take it in between. The
configuration is the one `make cluster` uses, only with faster health checks
(`FAST`), so that a killed replica is seen down within a second; it is checked
with `haproxy -c` before the start. `.url` is the base URL, `.states()` and
`.wait_states(...)` read each replica's status from the stats socket, `.log`
is everything HAProxy wrote, `.stop()` ends it.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy import haproxy
from deploy.cluster import die_with_parent
from deploy.haproxy import Checks

__all__ = ["FAST", "HAProxyProcess", "available"]

# Checks every 100 ms; two failures in a row mark a replica down, one success brings it back.
FAST = Checks(inter_ms=100, fastinter_ms=50, fall=2, rise=1)


def available() -> bool:
    try:
        haproxy.executable()
    except haproxy.HAProxyError:
        return False
    return True


class HAProxyProcess:
    host = "127.0.0.1"

    def __init__(self, run_dir: Path, servers: Sequence[str], checks: Checks = FAST) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        # A unix socket's path has to fit in 108 bytes; pytest's tmp paths can be long.
        self._sockdir = tempfile.TemporaryDirectory(prefix="haproxy-")
        self.stats_socket = Path(self._sockdir.name) / "stats.sock"
        self.log_path = run_dir / "haproxy.log"
        listener = socket.create_server((self.host, 0), backlog=1024)
        try:
            self.port: int = listener.getsockname()[1]
            fd = listener.fileno()
            self.config_path = run_dir / "haproxy.cfg"
            self.config_path.write_text(haproxy.config(f"fd@{fd}", servers, stats_socket=self.stats_socket, checks=checks))
            haproxy.check(self.config_path, pass_fds=[fd])
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [haproxy.executable(), "-db", "-f", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[fd],
                    preexec_fn=die_with_parent,  # even if this test process is killed
                )
        finally:
            listener.close()  # HAProxy has its own copy
        try:
            self.wait_states(lambda states: len(states) == len(servers))
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def states(self) -> dict[str, str]:
        return haproxy.server_states(self.stats_socket)

    def wait_states(self, wanted: Callable[[Mapping[str, str]], bool], timeout: float = 10.0) -> dict[str, str]:
        try:
            return haproxy.wait_states(self.stats_socket, wanted, timeout, alive=lambda: self.running)
        except haproxy.HAProxyError as e:
            raise AssertionError(f"{e}\nhaproxy's log:\n{self.log}") from None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._sockdir.cleanup()
        return self.proc.returncode
