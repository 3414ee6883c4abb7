"""Coverage-guided fuzzing of the stream core with atheris: `make fuzz` (bounded time).

Any bytes, split anywhere, must never make the core fail (it would fall back to
raw passthrough and log "rewrite failed"), and must give the same output
whatever the split. Seeds are the recorded streams in tests/recorded.py.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent

with atheris.instrument_imports():
    from normalize.endpoints.chat.options import Options
    from normalize.endpoints.chat.stream import ChatStream

OPTIONS = Options(make_id=lambda: "chatcmpl-fuzz", make_call_id=lambda: "call_fuzz", now=lambda: 1, max_event_bytes=1 << 16)


class Failed(Exception):
    pass


class RaiseOnError(logging.Handler):
    """The core logs its own failures and carries on raw; here that is a finding."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            raise Failed(record.getMessage())


def run(pieces: list[bytes]) -> bytes:
    stream = ChatStream(OPTIONS)
    return b"".join(stream.feed(p) for p in pieces) + stream.close()


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntInRange(0, 1 << 16) for _ in range(fdp.ConsumeIntInRange(0, 8)))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    cuts = [min(c, len(body)) for c in cuts]
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    whole = run([body])
    split = run(pieces)
    if whole != split:
        raise Failed(f"split changed the output: {whole!r} != {split!r}")


def main() -> None:
    logging.getLogger("normalize").addHandler(RaiseOnError())
    logging.getLogger("normalize").propagate = False
    corpus = ROOT / "fuzz" / "corpus"
    corpus.mkdir(exist_ok=True)
    from tests.recorded import ALL_STREAMS  # seeds

    for name, body in ALL_STREAMS.items():
        (corpus / name).write_bytes(b"\x00" + body)
    atheris.Setup([sys.argv[0], str(corpus), *sys.argv[1:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
