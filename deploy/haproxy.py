"""HAProxy in front of several mitmdump replicas: its configuration, and a few words with it.

Contract: `config(bind, servers, ...)` returns the whole HAProxy configuration
(text) for replicas at `servers` ("host:port" each, in order); the same
servers in the same order always give the same key -> replica mapping, on
any number of HAProxy instances (consistent hashing on fixed server ids).
`check(path)` runs `haproxy -c` on a file and raises `HAProxyError` with its
output when HAProxy refuses it. `server_states(socket)` asks a running
HAProxy, over its stats socket, for each replica's status ("UP", "DOWN", ...).
`wait_states(...)` waits, with a deadline, until they are as wanted.

What the configuration does, and why:
- HTTP mode; one frontend, one backend `replicas`.
- The replica is chosen by a hash of the API key: the `Authorization` header
  without its `Bearer ` scheme, else the `x-api-key` header (`balance hash`
  on a variable, `hash-type consistent`), so one key always reaches the same
  replica, whichever of the two headers its client sends it in (an OpenAI
  client and an Anthropic one sharing a key share its pacing), and when a
  replica goes down only its keys move. A request with neither header goes
  round robin (HAProxy's rule when the hashed value is missing).
- Streams pass as they come: no `compression`, no `http-buffer-request`
  (HAProxy forwards response data as it arrives unless told otherwise);
  `timeout server`/`client` are inactivity timeouts, long enough for a
  reasoning model that thinks for minutes before its first token.
- Health: `GET /normalize/health`, answered by the addon itself
  (normalize/endpoints/health.py), every `inter`; a replica that fails
  `fall` checks in a row, or refuses one real connection (`observe layer4`),
  is marked down; `rise` good checks bring it back. A request whose
  connection to a replica fails is retried on another (`option redispatch`).
- Errors HAProxy writes itself (no replica up, a replica that breaks off
  before answering) are OpenAI error envelopes, so clients raise their usual
  errors instead of choking on an HTML page.
- The access log line names the replica, the method and the path (never the
  query string, never a header) and the first 8 hex digits of the key's
  SHA-256, so an operator can see affinity at work without the log holding a
  key (`printf %s "$KEY" | sha256sum | cut -c1-8` finds one key's lines).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BACKEND = "replicas"
HEALTH_PATH = "/normalize/health"


class HAProxyError(Exception):
    """HAProxy is missing, refused its configuration, or did not answer in time."""


@dataclass(frozen=True)
class Checks:
    """How often replicas are checked, and how many results flip their state."""

    inter_ms: int = 2000  # between checks of a replica that is up
    fastinter_ms: int = 500  # after a failed check, until the replica is down or up again
    fall: int = 2  # failed checks in a row that mark a replica down
    rise: int = 2  # good checks in a row that bring it back


def error_json(status: int, message: str) -> str:
    """The body HAProxy sends for an error of its own: OpenAI's error envelope."""
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return json.dumps({"error": error}, separators=(",", ":"))


ERRORS = {
    502: "openai-normalize: the proxy replica broke off before answering",
    503: "openai-normalize: no proxy replica is up",
    504: "openai-normalize: the proxy replica did not answer in time",
}

LOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq "
    "key=%[var(txn.api_key),sha2(256),bytes(0,4),hex] %HM %HP"
)


def config(bind: str, servers: Sequence[str], *, stats_socket: str | Path | None = None, checks: Checks = Checks()) -> str:
    """The HAProxy configuration for replicas at `servers` ("host:port"), listening at `bind`
    ("host:port", or "fd@N" for a socket the caller already listens on)."""
    if not servers:
        raise ValueError("at least one replica is needed")
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket is not None else ""
    errors = "".join(
        f"    http-error status {status} content-type application/json string '{error_json(status, message)}'\n"
        for status, message in ERRORS.items()
    )
    lines = "".join(f"    server replica{i} {address} id {i}\n" for i, address in enumerate(servers, 1))
    return f"""\
# openai-normalize: HAProxy in front of {len(servers)} mitmdump replicas, sticky per API key.
# Written by deploy/haproxy.py (README.md, "Running for a team").
global
    log stdout format raw local0 info
{stats}
defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    option dontlognull
    timeout connect 5s
    # Inactivity timeouts: a stream may wait minutes for its first token.
    timeout client 15m
    timeout server 15m
    timeout http-request 60s
    timeout http-keep-alive 60s
    timeout queue 60s
    timeout check 5s
    # A connection refused by a dead replica is tried again on another one.
    retries 3
    option redispatch 1

frontend normalize
    bind {bind}
{errors}    default_backend {BACKEND}

backend {BACKEND}
    # The API key picks the replica: Authorization (without its "Bearer "), else x-api-key.
    http-request set-var(txn.api_key) req.fhdr(x-api-key)
    http-request set-var(txn.api_key) req.fhdr(authorization),'regsub("^bearer +","",i)' if {{ req.fhdr(authorization) -m found }}
    balance hash var(txn.api_key)
    hash-type consistent
    option httpchk
    http-check send meth GET uri {HEALTH_PATH} ver HTTP/1.1 hdr host localhost
    http-check expect status 200
    default-server check inter {checks.inter_ms} fastinter {checks.fastinter_ms} fall {checks.fall} rise {checks.rise} observe layer4 error-limit 1 on-error mark-down
    # One line per replica. The id fixes a replica's place on the hash ring: keep ids as they are
    # when adding replicas (only some keys move), and give every HAProxy in front the same lines.
{lines}"""


# -- talking to HAProxy ----------------------------------------------------------


def executable() -> str:
    """The haproxy binary on PATH (or in /usr/sbin, where Debian puts it)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise HAProxyError("haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)")
    return found


def version() -> str:
    out = subprocess.run([executable(), "-v"], capture_output=True, text=True, timeout=10).stdout
    return out.split()[2] if out.startswith("HAProxy version") else out.strip()


def check(path: Path, pass_fds: Sequence[int] = ()) -> None:
    """`haproxy -c -f path`: raises HAProxyError with HAProxy's words if it refuses the file.
    `pass_fds`: the sockets a `bind fd@N` line names, which HAProxy checks are there."""
    done = subprocess.run([executable(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30, pass_fds=tuple(pass_fds))
    if done.returncode != 0:
        raise HAProxyError(f"haproxy -c refused {path}:\n{done.stdout}{done.stderr}")


def server_states(stats_socket: str | Path, timeout: float = 2.0) -> dict[str, str]:
    """Each replica's status ("UP", "DOWN", "UP 1/2", "MAINT", ...), from `show stat` on the stats socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    text = b"".join(chunks).decode("utf-8", "replace").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {row["svname"]: row["status"] for row in rows if row.get("pxname") == BACKEND and row["svname"] not in ("BACKEND", "FRONTEND")}


def wait_states(
    stats_socket: str | Path,
    wanted: Callable[[Mapping[str, str]], bool],
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    poll_s: float = 0.05,
) -> dict[str, str]:
    """Asks HAProxy for the replicas' states until `wanted(states)` holds, for at most `timeout` seconds.
    `alive()` false ends the wait early (HAProxy exited). Raises HAProxyError with the last states seen."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    why = "no answer yet"
    while True:
        try:
            states = server_states(stats_socket)
            if wanted(states):
                return states
            why = f"states {states}"
        except OSError as e:  # the socket is not there yet
            why = f"stats socket: {e}"
        if not alive():
            raise HAProxyError(f"haproxy exited ({why})")
        if time.monotonic() >= deadline:
            raise HAProxyError(f"haproxy's replicas not as wanted within {timeout:g} s ({why})")
        time.sleep(poll_s)  # HAProxy pushes nothing: its state is only there to be asked for


# -- the example checked in as deploy/haproxy.cfg --------------------------------

EXAMPLE_SERVERS = ("10.0.0.11:8081", "10.0.0.11:8082", "10.0.0.12:8081", "10.0.0.12:8082")


def example() -> str:
    """deploy/haproxy.cfg: one HAProxy for two machines with two replicas each
    (`python -m deploy.haproxy > deploy/haproxy.cfg` writes it again)."""
    return config(":8080", EXAMPLE_SERVERS)


if __name__ == "__main__":
    print(example(), end="")
