"""Coverage-guided fuzzing of whole bodies with atheris: `make fuzz` (bounded time).

Any bytes, as the body of any endpoint's reply (completions, errors, model
lists, other paths), with any status and content-type: no exception may
escape, and what the addon writes instead must be valid UTF-8 strict JSON; a
body it leaves alone reaches the client unchanged (tests/whole_bodies.py says
what holds). Seeds are the replies in tests/upstreams.py and tests/hostile.py.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent

with atheris.instrument_imports():
    from tests import whole_bodies


class RaiseOnError(logging.Handler):
    """The addon logs its own failures (log.exception); here that is a finding."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            raise AssertionError(record.getMessage())


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    endpoint = whole_bodies.ENDPOINTS[fdp.ConsumeIntInRange(0, len(whole_bodies.ENDPOINTS) - 1)]
    status = whole_bodies.STATUSES[fdp.ConsumeIntInRange(0, len(whole_bodies.STATUSES) - 1)]
    content_type = whole_bodies.CONTENT_TYPES[fdp.ConsumeIntInRange(0, len(whole_bodies.CONTENT_TYPES) - 1)]
    whole_bodies.check(endpoint, status, content_type, fdp.ConsumeBytes(fdp.remaining_bytes()))


def seeds() -> dict[str, bytes]:
    from tests import hostile, upstreams

    out = {}
    for name in dir(upstreams):
        value = getattr(upstreams, name)
        if isinstance(value, bytes) and value[:1] in (b"{", b"[", b"d", b"<"):
            out[name.lower()] = value
    out["deep_completion"] = hostile.deep_completion(2000)
    out["html"] = hostile.unclosed_comments(4096)
    return out


def main() -> None:
    logging.getLogger("normalize").addHandler(RaiseOnError())
    logging.getLogger("normalize").propagate = False
    corpus = ROOT / "fuzz" / "corpus_whole"
    corpus.mkdir(exist_ok=True)
    for name, body in seeds().items():
        (corpus / name).write_bytes(b"\x00\x00\x00" + body)
    atheris.Setup([sys.argv[0], str(corpus), *sys.argv[1:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
