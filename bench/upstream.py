"""The benchmark's upstream: a chat completion stream server on 127.0.0.1, run as its own process.

`python bench/upstream.py` binds a free port, prints `listening <port>`, and
serves until its stdin closes (the benchmark holds the other end, so the
server cannot outlive it). Every request gets a stream shaped by its query:

  shape=nim      NVIDIA NIM chunks: key order and nulls as NIM sends them
  shape=nim_reasoning  the same, the text in reasoning_content (content null), as thinking models send it
  shape=nim_unique     NIM-shaped, every text numbered so none comes twice (the worst case)
  shape=nim_usage      NIM-shaped, with the running usage NIM puts on every chunk when asked for usage
  shape=openai   already OpenAI-shaped ("conforming"): no nulls in the delta, no usage
  events=N       N content events, between a role event and a finishing event, then [DONE]
  pace_us=P      0: every event as fast as the socket takes it (for CPU);
                 P > 0: content event i is written at start + i*P us, and its text
                 is `<time.monotonic_ns() at write, 19 digits> ` (for latency)
  group=G&group_size=K&group_wait_s=S
                 hold the response until K requests of group G are open at once
                 (bench/load.py: proves that many concurrent streams); if they are
                 not all there within S seconds (default 30) of the group's first
                 request, every request of the group gets `503 group G: only J of K
                 streams arrived within S s` instead

Framing: HTTP/1.1 chunked, one event per chunk and one chunk per `send`
(TCP_NODELAY), so mitmproxy sees each event as one data event. The bench
imports this module for the shapes, so both ends agree on the expected text.
"""

from __future__ import annotations

import functools
import json
import signal
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

NIM_ID = "8f20d6699e194a0abed38c671384d32d"
MODEL = "qwen/qwen3-next-80b-a3b-instruct"
CREATED = 1754000000
# Token-sized pieces, cycled: multi-byte UTF-8 and JSON escapes included.
PIECES = ["Hello", ",", " wörld", " —", " 東京", " 🚀", "\n", ' "quoted"', " tab\t", " back\\slash", " the", " end."]
# shape=nim_unique: the same pieces, each numbered, so no text comes twice in a stream
# (real token text repeats a lot; this is the worst case for anything that remembers it).
UNIQUE_PIECES = [f"{PIECES[i % len(PIECES)]}{i}" for i in range(60_000)]
MAX_EVENTS = 100_000_000
MAX_REQUEST = 1 << 20
MAX_GROUP = 10_000


def _dump(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def chunk(shape: str, content: str | None, *, role: str | None = None, finish_reason: str | None = None, n: int = 0) -> bytes:
    """One event, `data: <json>\\n\\n`, in the given shape (`n`: completion tokens so far, for nim_usage)."""
    if shape in ("nim", "nim_reasoning", "nim_unique", "nim_usage"):
        if shape == "nim_reasoning":
            content, reasoning = None, content
        else:
            reasoning = None
        obj = {
            "id": NIM_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": role, "content": content, "reasoning_content": reasoning, "tool_calls": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "matched_stop": None,
                }
            ],
            "usage": {"prompt_tokens": 1234, "total_tokens": 1234 + n, "completion_tokens": n} if shape == "nim_usage" else None,
        }
    elif shape == "openai":
        delta: dict[str, str] = {}
        if role is not None:
            delta = {"role": role, "content": ""}
        elif content is not None:
            delta = {"content": content}
        obj = {
            "id": "chatcmpl-" + NIM_ID[:24],
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return b"data: " + _dump(obj) + b"\n\n"


def pieces(shape: str) -> list[str]:
    return UNIQUE_PIECES if shape == "nim_unique" else PIECES


@functools.lru_cache(maxsize=None)
def events(shape: str) -> tuple[bytes, list[bytes], bytes, bytes]:
    """(the role event, the content events to cycle through, the finishing event, [DONE])."""
    first = chunk(shape, None, role="assistant")
    content = [chunk(shape, piece, n=i + 1) for i, piece in enumerate(pieces(shape))]
    return first, content, chunk(shape, None, finish_reason="stop", n=len(content)), b"data: [DONE]\n\n"


def expected_text(n: int, shape: str = "nim") -> str:
    """The text of a stream with n content events (pace_us=0)."""
    cycle = pieces(shape)
    times, rest = divmod(n, len(cycle))
    return "".join(cycle) * times + "".join(cycle[:rest])


def frame(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"connection: close\r\n"
    b"\r\n"
)


class Groups:
    """The barriers of `group=` requests, one per group name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: dict[str, tuple[threading.Barrier, list[int]]] = {}  # name -> (barrier, [arrivals])

    def wait(self, name: str, size: int, timeout: float) -> str | None:
        """Waits until `size` requests of the group wait together; None, or why not."""
        with self.lock:
            barrier, arrived = self.groups.setdefault(name, (threading.Barrier(size), [0]))
            arrived[0] += 1
        if barrier.parties != size:
            return f"group {name}: group_size {size} differs from the first request's {barrier.parties}"
        try:
            barrier.wait(timeout)  # the first waiter to time out breaks it for all
            return None
        except threading.BrokenBarrierError:
            return f"group {name}: only {arrived[0]} of {size} streams arrived within {timeout:g} s"


GROUPS = Groups()


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            target = self.read_request(sock)
            if target is None:
                return
            query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
            shape = query.get("shape", "nim")
            n = min(int(query.get("events", "10")), MAX_EVENTS)
            pace_ns = int(query.get("pace_us", "0")) * 1000
            if "group" in query:
                size = max(1, min(int(query.get("group_size", "1")), MAX_GROUP))
                why = GROUPS.wait(query["group"], size, float(query.get("group_wait_s", "30")))
                if why is not None:
                    sock.sendall(b"HTTP/1.1 503 %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % why.encode())
                    return
            self.stream(sock, shape, n, pace_ns)
        except OSError:
            pass  # the proxy went away (or timed out): nothing to clean up

    @staticmethod
    def read_request(sock: socket.socket) -> str | None:
        """Reads one request (head and content-length body); returns its target."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data or len(head) > MAX_REQUEST:
                return None
            head += data
        head, _, body = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length > MAX_REQUEST:
            return None
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                return None
            body += data
        return lines[0].split(" ")[1]

    @staticmethod
    def stream(sock: socket.socket, shape: str, n: int, pace_ns: int) -> None:
        first, content, finish, done = events(shape)
        send = sock.sendall
        send(HEADERS)
        send(frame(first))
        if pace_ns:
            # The timestamp is spliced into a prebuilt frame, so it is taken just before the write.
            prefix, suffix = frame(chunk(shape, "@" * 19 + " ")).split(b"@" * 19)
            start = time.monotonic_ns()
            for i in range(1, n + 1):
                target = start + i * pace_ns
                now = time.monotonic_ns()
                if now < target:
                    time.sleep((target - now) / 1e9)
                send(b"%s%019d%s" % (prefix, time.monotonic_ns(), suffix))
        else:
            frames = [frame(event) for event in content]
            k = len(frames)
            for i in range(n):
                send(frames[i % k])
        send(frame(finish))
        send(frame(done))
        send(b"0\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: hundreds of streams may connect at once


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the bench, which then ends us
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"listening {server.server_address[1]}", flush=True)
    sys.stdin.read()  # returns when the bench closes our stdin or exits
    server.shutdown()


if __name__ == "__main__":
    main()
