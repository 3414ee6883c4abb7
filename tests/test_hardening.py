"""The hardening cases (project issue #10) below the mitmproxy glue: caps, linear work, decoding.

Each test is named after the case it proves; tests/e2e/test_hardening_e2e.py
drives the same inputs through a real mitmdump. Time bounds here are loose (a
shared, busy machine): the quadratic versions took seconds to minutes on the
same inputs, the linear ones take milliseconds.
"""

from __future__ import annotations

import json
import time
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normalize.endpoints.chat.stream import ChatStream
from normalize.endpoints.errors import error_body, stream_error_line, visible_text
from normalize.wire import jsonio
from normalize.wire.body import DecodeError, Decoder, decode_whole, encode_whole
from normalize.wire.sse import EventSplitter
from tests import hostile, whole_bodies
from tests.recorded import NIM_STREAM, NIM_STREAM_EVENTS, NIM_STREAM_REPAIRED

MiB = 1024 * 1024


def run(pieces, stream=None):
    stream = stream or ChatStream()
    return b"".join(stream.feed(p) for p in pieces) + stream.close(), stream


class Timer:
    def __enter__(self):
        self.start = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.process_time() - self.start


# -- case 2: client-triggered memory and freezes ---------------------------------


def test_request_body_of_many_empty_objects():
    """Refused before parsing, in time linear in the body; brackets inside strings (code) do not count."""
    bomb = hostile.empty_objects_request(12 * MiB)
    with Timer() as t, pytest.raises(jsonio.TooManyContainers):
        jsonio.loads(bomb)
    assert t.seconds < 1.0
    code = b'{"model":"m","messages":[{"role":"user","content":"' + b"if (a[0]) { return {x: [1]}; }\\n" * 400_000 + b'"}]}'
    assert jsonio.container_bound(code) > jsonio.MAX_CONTAINERS
    assert jsonio.loads(code)["messages"][0]["role"] == "user"


def test_request_nested_too_deep():
    """100,000 deep: not JSON within the limits (no RecursionError escapes); 9,000 deep still reads."""
    with pytest.raises(jsonio.NotJSON):
        jsonio.loads(hostile.deep_request(100_000))
    assert jsonio.loads(hostile.deep_request(9_000))["model"] == "m"


def test_structure_counts_outside_strings():
    assert jsonio.structure(b'{"a":"[{\\"\\\\","b":[[]],"c":"\\\\"}') == (3, 3)
    assert jsonio.structure(b'"[[[["') == (0, 0)
    assert jsonio.structure(b"[[],[[{}]]]") == (5, 4)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'), lambda c: st.lists(c) | st.dictionaries(st.text(alphabet='[]{}"\\'), c)))
def test_structure_is_exact_for_any_json(value):
    def walk(v, depth=1):
        if isinstance(v, dict):
            kids = [walk(x, depth + 1) for x in v.values()]
        elif isinstance(v, list):
            kids = [walk(x, depth + 1) for x in v]
        else:
            return 0, depth - 1
        return 1 + sum(k[0] for k in kids), max([depth, *(k[1] for k in kids)])

    assert jsonio.structure(json.dumps(value).encode()) == walk(value)


# -- case 3: upstream-triggered freezes ------------------------------------------


def test_html_error_of_unclosed_comments():
    """A 128 KiB (and an 8 MiB) page of unclosed `<!--`: linear, and the message is the status's reason."""
    for size in (128 * 1024, 8 * MiB):
        page = hostile.unclosed_comments(size)
        with Timer() as t:
            error, _ = error_body(502, page, "text/html")
        assert t.seconds < 0.5, (size, t.seconds)
        assert error["error"]["message"] == "Bad Gateway"
        with Timer() as t:
            assert stream_error_line(page)["error"]["message"] == "error"
        assert t.seconds < 0.5, (size, t.seconds)


def test_visible_text_of_script_never_closed():
    assert visible_text(b"<p>before</p><script>" + b"<x>" * 100_000) == "before"


def test_blank_lines_before_the_first_event():
    """4 MiB of blank lines, in one piece or many: nothing held, nothing out, then the stream exact."""
    blank = hostile.blank_lines(4 * MiB)
    for size in (len(blank), 65536, 4096):
        stream = ChatStream()
        with Timer() as t:
            for at in range(0, len(blank), size):
                assert stream.feed(blank[at : at + size]) == b""
                assert len(stream._head) == 0
        assert t.seconds < 0.5, (size, t.seconds)
        assert run([NIM_STREAM], stream)[0] == NIM_STREAM_REPAIRED


def test_spaces_starting_the_first_line_still_count():
    """Only blank lines go: in SSE, spaces before `data` make it another field (passed on as it came)."""
    out, _ = run([b"\n\n  ", b"  data: x\n\n", NIM_STREAM])
    assert out.startswith(b"    data: x\n\n")


def test_stream_answered_with_json_after_blank_lines():
    out, _ = run([b"\r\n" * 1000, b'{"error":{"message":"boom","type":"x","param":null,"code":null}}'])
    assert out == b'data: {"error":{"message":"boom","type":"x","param":null,"code":null}}\n\ndata: [DONE]\n\n'


def test_event_of_many_choices():
    """300,000 `{}` choices in one event: passed through unparsed, at once."""
    event = hostile.many_choices_event(300_000)
    with Timer() as t:
        out, _ = run([NIM_STREAM_EVENTS[0], event, b"data: [DONE]\n\n"])
    assert t.seconds < 0.5
    assert event in out and out.endswith(b"data: [DONE]\n\n")


def test_deeply_nested_reply_is_written_compact():
    """A reply nested 5,000 deep that needs a repair: out about as large as in, not 50 MB."""
    body = hostile.deep_completion(5_000)
    out = jsonio.dump_pretty(jsonio.loads(body))
    assert len(out) <= len(body) + 1 and json.loads(out)["choices"][0]["message"]["content"] is None


def test_multiline_event_fed_line_by_line():
    """80,000 lines of one 4.4 MiB event, a feed each: linear (164 s when quadratic)."""
    pieces = hostile.multiline_event(80_000)
    assert sum(map(len, pieces)) > 4 * MiB
    with Timer() as t:
        out, _ = run(pieces)
    assert t.seconds < 3.0
    assert out == hostile.multiline_event_repaired(80_000)


def test_event_splitter_is_linear():
    split = EventSplitter(16 * MiB)
    line = b"data: " + b"x" * 50 + b"\n"
    with Timer() as t:
        for _ in range(80_000):
            assert split.feed(line) == []
        (block,) = split.feed(b"\n")
    assert t.seconds < 1.0
    assert len(block) == 80_000 * len(line) - 1


# -- cases 4 and 5: gzip of several members, deflate without its wrapper ----------


def test_gzip_stream_of_several_members():
    decoder = Decoder("gzip", MiB)
    out = b"".join(decoder.feed(piece) for piece in hostile.gzip_members()) + decoder.close()
    assert out == NIM_STREAM
    # Split anywhere, too.
    whole = b"".join(hostile.gzip_members())
    decoder = Decoder("gzip", MiB)
    assert b"".join(decoder.feed(whole[i : i + 7]) for i in range(0, len(whole), 7)) == NIM_STREAM
    assert run([NIM_STREAM])[0] == NIM_STREAM_REPAIRED


@pytest.mark.parametrize("wrapped", [False, True])
def test_raw_deflate(wrapped):
    pieces = hostile.raw_deflate()
    if wrapped:
        pieces = [zlib.compress(NIM_STREAM)]
    decoder = Decoder("deflate", MiB)
    assert b"".join(decoder.feed(p) for p in pieces) + decoder.close() == NIM_STREAM
    assert decode_whole(b"".join(pieces), "deflate", MiB) == NIM_STREAM


@pytest.mark.parametrize("wrapped", [False, True])
def test_deflate_first_piece_of_one_byte(wrapped):
    """Whether deflate has its zlib wrapper is told by its first 2 bytes: a first piece of one
    byte is held until the second comes."""
    body = zlib.compress(NIM_STREAM) if wrapped else b"".join(hostile.raw_deflate())
    decoder = Decoder("deflate", MiB)
    assert decoder.feed(body[:1]) == b""
    assert decoder.feed(body[1:]) + decoder.close() == NIM_STREAM
    assert decoder.name == ("deflate" if wrapped else "raw deflate")


def test_deflate_of_one_byte_is_an_error():
    decoder = Decoder("deflate", MiB)
    decoder.feed(b"x")
    with pytest.raises(DecodeError, match="ended before its end"):
        decoder.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_empty_body_with_a_content_encoding(encoding):
    assert decode_whole(b"", encoding, MiB) == b""


def test_decoder_caps_what_one_feed_gives():
    with pytest.raises(DecodeError, match="more than"):
        Decoder("gzip", 16 * MiB).feed(hostile.gzip_bomb(64 * MiB))


def test_gzip_cut_inside_a_member_is_an_error():
    body = b"".join(hostile.gzip_members())
    decoder = Decoder("gzip", MiB)
    decoder.feed(body[:-5])
    with pytest.raises(DecodeError, match="ended before its end"):
        decoder.close()


def test_bytes_that_do_not_decode_are_an_error():
    with pytest.raises(DecodeError, match="not valid gzip"):
        Decoder("gzip", MiB).feed(b"not gzip at all")


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", ""])
def test_encode_whole_round_trips(encoding):
    assert decode_whole(encode_whole(NIM_STREAM, encoding), encoding, MiB) == NIM_STREAM


# -- case 9: NaN, infinities, lone surrogates -------------------------------------


@pytest.mark.parametrize("text", [b"[NaN]", b'{"a":Infinity}', b"[-Infinity]", b'{"created":1e400}', b"[-1e999]"])
def test_not_a_number_is_not_json(text):
    with pytest.raises(jsonio.NotJSON):
        jsonio.loads(text)


def test_lone_surrogate_is_written_as_valid_utf8():
    obj = jsonio.loads(b'{"content":"\\ud83d","x":"\xc3\xa9"}')
    for out in (jsonio.dump(obj), jsonio.dump_pretty(obj)):
        out.decode("utf-8")  # valid UTF-8
        assert json.loads(out) == obj


# -- whole bodies: any input, no exception, valid UTF-8 strict JSON out or the input unchanged --


def _json_values():
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=8)
        | st.text(alphabet=st.characters(categories=["Cs"]), max_size=3)  # lone surrogates
    )
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


KEYS = ["id", "object", "created", "model", "choices", "message", "content", "role", "tool_calls", "error", "data",
        "detail", "title", "status", "type", "code", "owned_by", "finish_reason", "index", "delta", "usage"]


def _shaped():
    """Values shaped like completions, errors and model lists, with anything inside."""
    leaf = _json_values()
    node = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5), max_leaves=25)
    return node


def _text(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN and Infinity written as JavaScript does


@given(
    st.sampled_from(whole_bodies.ENDPOINTS),
    st.sampled_from(whole_bodies.STATUSES),
    st.sampled_from(whole_bodies.CONTENT_TYPES),
    st.one_of(
        _shaped().map(_text),
        st.tuples(st.sampled_from([b"", b"data:", b"data: ", b"\n\n", b" "]), _shaped().map(_text), st.sampled_from([b"", b"\n", b" x"])).map(b"".join),
        st.binary(max_size=300),
        st.sampled_from([b'{"created":1e400,"choices":[]}', b'[{"id":"a","created":1e400}]', b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}"]),
    ),
)
def test_any_whole_body_gives_valid_json_or_is_left_alone(endpoint, status, content_type, body):
    whole_bodies.check(endpoint, status, content_type, body)
