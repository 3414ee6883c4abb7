"""Whole bodies and content-encodings, with a cap on everything they can grow to.

Contract:
  strip_body(body)        the body without surrounding white space and one
                          leading `data:` (NIM's error bodies, DeepSeek under load).
  parse_json_body(body, max_containers=)
                          that body's JSON value, or None when it is not JSON;
                          `read_json_body` also says why not.
  Decoder(encoding, cap)  an incremental decoder for `gzip`/`x-gzip`/`deflate`:
                          `feed(bytes) -> bytes`, `close() -> bytes`. gzip bodies
                          made of several members (legal, and what concatenating
                          servers send) are decoded whole; `deflate` is taken
                          with or without its zlib wrapper, as browsers and
                          mitmproxy take it. One `feed` never yields more than
                          `cap` bytes: past that, or on bytes that do not
                          decode, it raises `DecodeError`, and so does `close`
                          when the body stopped inside a compressed member.
  decode_whole(body, encoding, cap)
                          a whole body decoded, or `DecodeError` (past the cap,
                          bad bytes, an encoding not decoded here).
  encode_whole(body, encoding)
                          a whole body encoded again (gzip, or deflate with its
                          zlib wrapper), for a reply whose headers already
                          announced that encoding.
`ENCODINGS` are the ones decoded here; others are left to the caller.
"""

from __future__ import annotations

import zlib
from typing import Any

from .jsonio import MAX_CONTAINERS, NotJSON, loads

__all__ = ["ENCODINGS", "DecodeError", "Decoder", "decode_whole", "encode_whole", "parse_json_body", "read_json_body", "strip_body"]

ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


class DecodeError(ValueError):
    """A body that could not be decoded within the cap; the message says which."""


def strip_body(body: bytes) -> bytes:
    body = body.strip()
    if body.startswith(b"data:"):
        body = body[5:].lstrip()
    return body


def read_json_body(body: bytes, *, max_containers: int = MAX_CONTAINERS) -> tuple[Any | None, str]:
    """That body's JSON value and "", or None and why it is not JSON."""
    try:
        return loads(strip_body(body), max_containers=max_containers), ""
    except NotJSON as e:
        return None, str(e)


def parse_json_body(body: bytes, *, max_containers: int = MAX_CONTAINERS) -> Any | None:
    return read_json_body(body, max_containers=max_containers)[0]


def encoding_of(header: str) -> str:
    """A content-encoding header's value as compared here: trimmed, lower case ("" for none)."""
    encoding = header.strip().lower()
    return "" if encoding == "identity" else encoding


class Decoder:
    __slots__ = ("_cap", "_gzip", "_head", "_raw_deflate", "_z", "decoded")

    def __init__(self, encoding: str, cap: int) -> None:
        encoding = encoding_of(encoding)
        if encoding not in ENCODINGS:
            raise ValueError(f"no decoder for content-encoding {encoding!r}")
        self._gzip = encoding != "deflate"
        self._raw_deflate = False  # deflate without its zlib wrapper: decided by the first 2 bytes
        self._head = b""  # deflate: a first byte, held until the second comes
        self._cap = cap
        self._z: Any = zlib.decompressobj(zlib.MAX_WBITS | 16) if self._gzip else None
        self.decoded = 0  # bytes decoded so far

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        room = self._cap
        while data:
            if self._z is None:
                data, self._head = self._head + data, b""
                if len(data) < 2:
                    self._head = data  # one byte cannot tell a zlib header
                    break
                # zlib's header: CM 8 in the low bits, and a 16-bit value that is a multiple of 31.
                wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                self._raw_deflate = not wrapped
                self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            elif self._z.eof:
                if not self._gzip:
                    raise DecodeError(f"bytes after the end of the {self.name} body")
                self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)  # the next gzip member
            try:
                piece = self._z.decompress(data, room + 1)
            except zlib.error as e:
                raise DecodeError(f"the body is not valid {self.name}: {e}") from None
            room -= len(piece)
            if room < 0:
                raise DecodeError(f"the body decodes to more than {self._cap} bytes in one piece")
            out.append(piece)
            data = self._z.unconsumed_tail or (self._z.unused_data if self._z.eof else b"")
        result = b"".join(out)
        self.decoded += len(result)
        return result

    def close(self) -> bytes:
        """Ends the body; `DecodeError` when it stopped inside a compressed member."""
        if self._head or (self._z is not None and not self._z.eof):
            raise DecodeError(f"the {self.name} body ended before its end")
        return b""

    @property
    def name(self) -> str:
        if self._gzip:
            return "gzip"
        return "raw deflate" if self._raw_deflate else "deflate"


def decode_whole(body: bytes, encoding: str, cap: int) -> bytes:
    """A whole body as sent (`encoding`: its content-encoding header), decoded; `DecodeError`
    past `cap` bytes, as sent or decoded, on bad bytes, or for an encoding not decoded here.
    An empty body is empty whatever its content-encoding says (servers label bodiless replies so)."""
    if len(body) > cap:
        raise DecodeError(f"{len(body)} bytes, over normalize_max_body_bytes ({cap})")
    encoding = encoding_of(encoding)
    if not body or not encoding:
        return body
    if encoding not in ENCODINGS:
        raise DecodeError(f"content-encoding {encoding!r} is not decoded here")
    decoder = Decoder(encoding, cap)
    out = decoder.feed(body)
    decoder.close()
    return out


def encode_whole(body: bytes, encoding: str) -> bytes:
    """`body` encoded as `encoding` says (one of ENCODINGS, or none)."""
    encoding = encoding_of(encoding)
    if not encoding:
        return body
    if encoding not in ENCODINGS:
        raise ValueError(f"no encoder for content-encoding {encoding!r}")
    if encoding == "deflate":
        return zlib.compress(body)
    z = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    return z.compress(body) + z.flush()
