"""A scripted HTTP/1.1 upstream for end-to-end tests, plain or TLS, on 127.0.0.1.

Tests register a `Reply` per (method, path) and read back what the server got
from `requests`. A reply's body is a list of chunks; each chunk is written and
flushed on its own (one `send` per chunk, TCP_NODELAY), so a client behind a
proxy can observe the stream arriving piece by piece. Framing modes:

  "chunked"         Transfer-Encoding: chunked, one HTTP chunk per list element
  "content-length"  Content-Length of the whole body, pieces still sent one by one
  "close"           neither header; `Connection: close`, the body ends at EOF

`gzip=True` gzip-compresses the body whatever the request's accept-encoding
said (each chunk is sync-flushed, so it stays decodable as it arrives) and adds
`Content-Encoding: gzip`.

`ABORT` in the chunk list resets the connection right there (RST, no end of
body), as an upstream that dies mid-stream does.

In "chunked" and "close" modes without gzip, `chunks` may be an iterator (a
generator): each piece is made when the one before has been sent, so a reply
can go on for as long as a test needs (the bystander stream in
tests/e2e/bystander.py).

`respond(method, path, fn)` registers a function of the recorded request that
returns the `Reply` to send, for tests where the reply depends on what was
asked (an agent's second turn carries its tool's result).

A `threading.Event` in the chunk list is a gate: the server waits for the test
to set it before sending what follows (bounded by `gate_timeout`; on timeout the
connection is aborted and the failure is recorded in `errors`). A test sets the
gate once its client has seen the previous chunk, which proves the bytes were
streamed through rather than buffered, without any sleeping.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

__all__ = [
    "ABORT",
    "check_no_crash",
    "Gate",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedUpstream",
    "make_self_signed_cert",
]

Mode = Literal["chunked", "content-length", "close"]
Gate = threading.Event


class _Abort:
    def __repr__(self) -> str:
        return "ABORT"


ABORT = _Abort()
Chunk = bytes | threading.Event | _Abort


@dataclass
class Reply:
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    chunks: Iterable[Chunk] = ()
    mode: Mode = "chunked"
    gzip: bool = False
    reason: str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]  # as received: order and case kept
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


Responder = Callable[["RecordedRequest"], Reply]


@dataclass
class _State:
    replies: dict[tuple[str, str], Reply | Responder] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    request_seen: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.request_seen = threading.Condition(self.lock)


class _Aborted(Exception):
    pass


class _ScriptedAbort(_Aborted):
    """The reply itself says to die here: not an error of the test."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Keep-alive connections idle in readline(); bound that wait.
    timeout = 30

    def setup(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_context is not None:
            sock.settimeout(10)
            self.request = self.server.ssl_context.wrap_socket(sock, server_side=True)
        self.server.track(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)
            if self.server.ssl_context is not None:
                # wrap_socket() detached the accepted socket; the server's own
                # shutdown_request() cannot close this one for us.
                try:
                    self.request.close()
                except OSError:
                    pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: pytest shows failures, not every request

    # One method for all verbs.
    def _serve(self) -> None:
        state = self.server.state
        body = self._read_body()
        path = self.path
        with state.lock:
            state.requests.append(
                RecordedRequest(self.command, path, list(self.headers.items()), body)
            )
            state.request_seen.notify_all()
            reply = state.replies.get((self.command, path))
            if reply is None:
                reply = state.replies.get((self.command, path.split("?", 1)[0]))
            recorded = state.requests[-1]
        if callable(reply):
            try:
                reply = reply(recorded)
            except Exception:
                with state.lock:
                    state.errors.append(f"handler error in the responder for {self.command} {path}")
                raise
        if reply is None:
            reply = Reply(
                status=404,
                headers=[("Content-Type", "application/json")],
                chunks=[b'{"error":{"message":"no scripted reply"}}'],
                mode="content-length",
            )
        try:
            self._send(reply)
        except _Aborted as e:
            if not isinstance(e, _ScriptedAbort):
                with state.lock:
                    state.errors.append(str(e))
            self.close_connection = True
            try:
                # RST rather than FIN, so the client sees an error, not a short body.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError) as e:
            with state.lock:
                state.errors.append(f"{self.command} {path}: client went away: {e!r}")
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        pieces: Iterable[Chunk] = reply.chunks
        if reply.gzip:
            pieces = _gzip_pieces(pieces)
        self.send_response_only(reply.status, reply.reason)
        self.send_header("Date", self.date_time_string())
        names = {k.lower() for k, _ in reply.headers}
        for k, v in reply.headers:
            self.send_header(k, v)
        if reply.gzip and "content-encoding" not in names:
            self.send_header("Content-Encoding", "gzip")
        if reply.mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif reply.mode == "content-length":
            pieces = list(pieces)
            total = sum(len(p) for p in pieces if isinstance(p, bytes))
            if ABORT in pieces:
                total += 1  # announce more than will come, so the abort is visibly short
            self.send_header("Content-Length", str(total))
        elif reply.mode == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            raise ValueError(f"unknown mode {reply.mode!r}")
        self.end_headers()  # flushes the header buffer

        out = self.wfile
        for piece in pieces:
            if piece is ABORT:
                raise _ScriptedAbort(f"{self.command} {self.path}: scripted abort")
            if isinstance(piece, threading.Event):
                if not piece.wait(self.server.gate_timeout):
                    raise _Aborted(
                        f"{self.command} {self.path}: gate not opened within "
                        f"{self.server.gate_timeout}s (was the stream buffered?)"
                    )
                continue
            if not piece:
                continue  # an empty chunk would end a chunked body
            if reply.mode == "chunked":
                out.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                out.write(piece)
            out.flush()
        if reply.mode == "chunked":
            out.write(b"0\r\n\r\n")
            out.flush()
        elif reply.mode == "close":
            out.flush()
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _gzip_pieces(pieces: Iterable[Chunk]) -> list[Chunk]:
    comp = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    out: list[Chunk] = []
    for p in pieces:
        if isinstance(p, bytes):
            out.append(comp.compress(p) + comp.flush(zlib.Z_SYNC_FLUSH))
        else:
            out.append(p)
    out.append(comp.flush(zlib.Z_FINISH))
    return out


# What a client hanging up looks like from the handler's side.
HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError, TimeoutError)


def check_no_crash(upstream: ScriptedUpstream) -> None:
    """The one upstream-crash check: a handler that failed by itself is a bug in the
    harness or the test, and must not pass silently (a client hanging up is not one)."""
    crashes = [e for e in upstream.errors if e.startswith("handler error")]
    assert not crashes, "upstream handler crashed:\n" + "\n".join(crashes)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: _State, ssl_context: ssl.SSLContext | None, gate_timeout: float):
        self.state = state
        self.ssl_context = ssl_context
        self.gate_timeout = gate_timeout
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(sock)

    def close_all_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        import sys
        import traceback

        error = sys.exc_info()[1]
        with self.state.lock:
            if isinstance(error, HANGUPS):
                # The client hung up while the handler read or wrote (a client that stops
                # reading after an error, or a test that breaks off): not the upstream's fault.
                self.state.errors.append(f"client went away ({client_address}): {error!r}")
            else:
                self.state.errors.append(f"handler error for {client_address}:\n{traceback.format_exc()}")


class ScriptedUpstream:
    """The server. Use as a context manager, or call start()/close()."""

    def __init__(
        self,
        *,
        tls: bool = False,
        cert_dir: Path | None = None,
        gate_timeout: float = 5.0,
    ) -> None:
        self.tls = tls
        self.cert_path: Path | None = None
        self.key_path: Path | None = None
        ctx = None
        if tls:
            if cert_dir is None:
                raise ValueError("a TLS upstream needs cert_dir for its certificate files")
            self.cert_path, self.key_path = make_self_signed_cert(cert_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert_path, self.key_path)
        self._state = _State()
        self._server = _Server(self._state, ctx, gate_timeout)
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> ScriptedUpstream:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"upstream:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()  # returns once serve_forever has stopped
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_all_connections()
        self._server.server_close()

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses --
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        """`127.0.0.1:PORT`, the form normalize_hosts takes."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. `http://127.0.0.1:PORT`."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    # -- scripting --
    def reply(
        self,
        method: str,
        path: str,
        chunks: Sequence[Chunk] | bytes = (),
        *,
        status: int = 200,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        mode: Mode = "chunked",
        gzip: bool = False,
        reason: str | None = None,
    ) -> Reply:
        """Registers (replacing) the reply for `method path`. Returns it."""
        if isinstance(chunks, bytes):
            chunks = [chunks]
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        r = Reply(status, list(headers), list(chunks), mode, gzip, reason)
        with self._state.lock:
            self._state.replies[(method.upper(), path)] = r
        return r

    def respond(self, method: str, path: str, responder: Responder) -> None:
        """Registers (replacing) a function that picks the reply for each `method path`
        request from what was asked (a multi-turn agent: a tool call first, then the
        answer once the tool's result comes back)."""
        with self._state.lock:
            self._state.replies[(method.upper(), path)] = responder

    def reset(self) -> None:
        """Forgets replies, recorded requests and errors."""
        with self._state.lock:
            self._state.replies.clear()
            self._state.requests.clear()
            self._state.errors.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def errors(self) -> list[str]:
        with self._state.lock:
            return list(self._state.errors)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Blocks (bounded) until at least n requests were received."""
        with self._state.request_seen:
            ok = self._state.request_seen.wait_for(
                lambda: len(self._state.requests) >= n, timeout
            )
            got = list(self._state.requests)
        if not ok:
            raise TimeoutError(f"expected {n} upstream requests within {timeout}s, got {len(got)}")
        return got


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 and localhost.

    Returns (cert_path, key_path), both PEM. Valid as its own trust anchor under
    Python 3.13's VERIFY_X509_STRICT (it carries SKI/AKI and serverAuth).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "upstream-cert.pem"
    key_path = directory / "upstream-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
