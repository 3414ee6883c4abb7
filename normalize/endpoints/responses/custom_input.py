"""A custom tool's input, read out of the chat arguments that carry it, as they stream.

A custom tool (Codex's freeform `apply_patch`) goes upstream as a function
taking one string, `{"input": "..."}`; the client wants the string itself
back (a `custom_tool_call` whose `input` is the patch). `InputReader.feed(piece)`
takes the arguments as they arrive, split anywhere, and returns the input's
text decoded so far (new text only), so the client gets deltas as the model
writes; `finish(arguments)` returns the rest once the call is complete. What
the deltas add up to is always the final input:

  `{"input": "..."}` (white space allowed)  the string, decoded as it comes;
  any other JSON object with a string `input` nothing until the end, then the string;
  anything else (not JSON, or no string input) the arguments as they came: a model
                                              that wrote the patch itself wrote the input.
Bad JSON after the input began to stream: the rest goes as it came.
"""

from __future__ import annotations

from typing import Any

from ...wire.jsonio import NotJSON, loads

_PREFIX = ("{", '"input"', ":", '"')
_WHITE = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


class InputReader:
    def __init__(self) -> None:
        self.sent: list[str] = []  # what the deltas said so far
        self._step = 0  # how much of _PREFIX was matched; len(_PREFIX): inside the string
        self._partial = ""  # the part of a prefix token matched so far, or an escape being read
        self._state = "prefix"  # prefix | string | closed | broken | raw
        self._surrogate = ""  # a high surrogate waiting for its low half

    def feed(self, piece: str) -> str:
        out: list[str] = []
        if self._state == "raw":
            out.append(piece)
        else:
            for at, char in enumerate(piece):
                if self._state == "string":
                    self._string(char, out)
                    if self._state == "raw":  # not JSON after all: the rest goes as it came
                        out.append(piece[at + 1 :])
                        break
                elif self._state == "prefix":
                    self._prefix(char)
                else:
                    break  # closed: the rest is the object's end; broken: wait for the end
        text = "".join(out)
        if text:
            self.sent.append(text)
        return text

    def finish(self, arguments: str) -> str:
        """The rest of the input, once the whole arguments string is known."""
        sent = "".join(self.sent)
        if self._state in ("string", "closed", "raw"):
            if self._surrogate:
                self._surrogate, rest = "", self._surrogate
                self.sent.append(rest)
                return rest
            return ""
        final = _whole_input(arguments)
        rest = final[len(sent) :] if final.startswith(sent) else final
        if rest:
            self.sent.append(rest)
        return rest

    # -- before the string: `{`, `"input"`, `:`, `"` with white space between ------

    def _prefix(self, char: str) -> None:
        token = _PREFIX[self._step]
        if not self._partial and char in _WHITE:
            return
        candidate = self._partial + char
        if not token.startswith(candidate):
            self._state = "broken"
            return
        if candidate == token:
            self._partial = ""
            self._step += 1
            if self._step == len(_PREFIX):
                self._state = "string"
        else:
            self._partial = candidate

    # -- inside the string --------------------------------------------------

    def _string(self, char: str, out: list[str]) -> None:
        partial = self._partial
        if not partial:
            if char == "\\":
                self._partial = char
            elif char == '"':
                self._state = "closed"
                self._flush_surrogate(out)
            elif char < " ":
                self._fail(char, out)  # a raw control character: not JSON
            else:
                self._flush_surrogate(out)
                out.append(char)
            return
        if partial == "\\":
            if char == "u":
                self._partial = "\\u"
            elif char in _ESCAPES:
                self._partial = ""
                self._flush_surrogate(out)
                out.append(_ESCAPES[char])
            else:
                self._fail(char, out)
            return
        if char not in _HEX:  # inside \uXXXX
            self._fail(char, out)
            return
        partial += char
        if len(partial) < 6:
            self._partial = partial
            return
        self._partial = ""
        code = int(partial[2:], 16)
        if 0xD800 <= code < 0xDC00:
            self._flush_surrogate(out)
            self._surrogate = chr(code)
        elif 0xDC00 <= code < 0xE000 and self._surrogate:
            pair = (ord(self._surrogate) - 0xD800) * 0x400 + (code - 0xDC00) + 0x10000
            self._surrogate = ""
            out.append(chr(pair))
        else:
            self._flush_surrogate(out)
            out.append(chr(code))

    def _flush_surrogate(self, out: list[str]) -> None:
        if self._surrogate:
            out.append(self._surrogate)  # a lone surrogate, as json.loads would give it
            self._surrogate = ""

    def _fail(self, char: str, out: list[str]) -> None:
        """Not JSON after all: what was read of the escape, this character and the rest go as they came."""
        self._flush_surrogate(out)
        out.append(self._partial + char)
        self._partial = ""
        self._state = "raw"


def _whole_input(arguments: str) -> str:
    try:
        obj: Any = loads(arguments)
    except NotJSON:
        return arguments
    if isinstance(obj, dict) and isinstance(obj.get("input"), str):
        return str(obj["input"])
    return arguments
