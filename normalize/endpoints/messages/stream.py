"""The bridged stream: NIM's running usage lifted off each event, then `ChatStream` into `MessagesSink`.

Contract: `bridged_stream(options, info, repairs, label)` builds the flow's
`Transducer` (endpoints/base.py), a `MessagesStream(chat, sink)`: `feed`,
`close` and `fail` go to the `ChatStream`, whose sink is `sink`.

Why a step in front: asked for usage (the bridge always asks), NIM puts its
running totals on every chunk, `…,"usage":{…}}`, so every text chunk differs
from the last in more than its text, the chat fast path (chat/fastpath.py)
never applies, and every event takes the full rules. So where a piece fed
ends with a usage object that closes the top-level object
(`,"usage":{…}}\\n\\n`, no object inside it), that member is taken off before
the chat rules read the event (every such event in the piece: one read
may hold many), and its bytes go to the sink, which reads the
last one at the end and reports the latest usage (the larger running total,
if the rules saw usage too). Anything else passes as it came. Only a member
of the top-level object can end that way (`,"` with that quote unescaped is
JSON structure, never the inside of a string), so any split of the stream
gives the same events.
"""

from __future__ import annotations

from collections import Counter

from ...repairs import Repair
from ..chat.options import Options
from ..chat.stream import ChatStream
from .message import ReplyInfo
from .sink import MessagesSink

_USAGE_KEY = b',"usage":{'
_LOOK_BACK = 400  # bytes before the end where a usage object may start


class MessagesStream:
    def __init__(self, chat: ChatStream, sink: MessagesSink) -> None:
        self.chat = chat
        self.sink = sink
        self._feed = chat.feed
        self.lifted = 0  # usage objects taken off events that had choices

    @property
    def events(self) -> int:
        return self.chat.events

    @events.setter
    def events(self, value: int) -> None:
        self.chat.events = value

    @property
    def raw(self) -> bool:
        return self.chat.raw

    @property
    def repairs(self) -> Counter[Repair]:
        # Counted as the chat rules count usage on chunks with choices: moved to the end.
        return self.chat.repairs + Counter({Repair.usage_not_last: self.lifted})

    @property
    def fast_path_uses(self) -> int:
        return self.chat.fast_path_uses

    def feed(self, data: bytes) -> bytes:
        if data.endswith(b"}}\n\n"):
            end = len(data) - 4  # where the usage object's `}` would be
            at = data.rfind(_USAGE_KEY, 0, end)
            # The common case: the piece is one event on one line, its last member usage.
            if at > 0 and data.find(b"\n", 0, end) < 0:
                if data.find(b"}", at + 10) == end and data.find(b"{", at + 10) < 0:
                    self.sink.usage_raw = data[at + 9 : end + 1]
                    if not data.endswith(b'"choices":[]', 0, at):
                        self.lifted += 1
                    return self._feed(data[:at] + b"}\n\n")
                return self._feed(data)
        if data.find(b"\n", 0, len(data) - 2) >= 0 and data.rfind(_USAGE_KEY) >= 0:
            return self._feed(self._lift_all(data))  # several events (the last one cut by the read?)
        return self._feed(data)

    def _lift_all(self, data: bytes) -> bytes:
        """Every event this piece ends (a read may hold many) whose last member is usage, lifted."""
        pieces = []
        start = 0
        while (end := data.find(b"}}\n\n", start)) >= 0:
            at = data.rfind(_USAGE_KEY, max(start, end - _LOOK_BACK), end)
            if at > start and data.find(b"}", at + 10) == end and data.find(b"{", at + 10, end) < 0 and data.find(b"\n", at, end) < 0:
                self.sink.usage_raw = data[at + 9 : end + 1]
                if not data.endswith(b'"choices":[]', start, at):
                    self.lifted += 1
                pieces.append(data[start:at])
                pieces.append(b"}\n\n")
            else:
                pieces.append(data[start : end + 4])
            start = end + 4
        pieces.append(data[start:])
        return b"".join(pieces)

    def close(self) -> bytes:
        return self.chat.close()

    def fail(self, why: str) -> bytes:
        return self.chat.fail(why)


def bridged_stream(options: Options, info: ReplyInfo, repairs: Counter[Repair], label: str = "stream") -> MessagesStream:
    """The transducer for one bridged stream; the sink counts its repairs in `repairs`."""
    sink = MessagesSink(info, repairs, label)
    return MessagesStream(ChatStream(options, sink), sink)
