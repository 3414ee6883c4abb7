from normalize.wire.sse import Event, EventSplitter, LineEnds, encode_comment, encode_data, parse_block


def feed_all(pieces):
    lines, split = LineEnds(), EventSplitter()
    blocks = []
    for piece in pieces:
        blocks += split.feed(lines.feed(piece))
    return blocks, split.flush()


def test_blocks_come_out_when_their_blank_line_arrives():
    split = EventSplitter()
    assert split.feed(b"data: a\n") == []
    assert split.feed(b"\ndata: b\n\nda") == [b"data: a", b"data: b"]
    assert split.flush() == b"da"


def test_single_byte_chunks():
    stream = b"data: a\n\n: ping\n\ndata: b\ndata: c\n\n"
    blocks, tail = feed_all([stream[i : i + 1] for i in range(len(stream))])
    assert blocks == [b"data: a", b": ping", b"data: b\ndata: c"]
    assert tail == b""


def test_crlf_across_chunks():
    blocks, tail = feed_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert blocks == [b"data: a", b"data: b"]
    assert tail == b""


def test_cr_line_ends():
    lines = LineEnds()
    assert lines.feed(b"data: a\r\rdata: b\r") == b"data: a\n\ndata: b\n"
    assert lines.feed(b"\r") == b"\n"
    assert lines.seen_cr


def test_multibyte_char_split():
    text = "東京🚀".encode()
    blocks, _ = feed_all([b"data: " + text[:2], text[2:7], text[7:] + b"\n\n"])
    assert blocks == [b"data: " + text]


def test_extra_blank_lines_dispatch_nothing():
    blocks, _ = feed_all([b"data: a\n\n\n\n\ndata: b\n\n"])
    assert [parse_block(b).data for b in blocks if parse_block(b).data] == [b"a", b"b"]


def test_overflowing_tail_is_reported():
    split = EventSplitter(max_bytes=10)
    split.feed(b"data: 0123")
    assert not split.overflowing
    split.feed(b"456789")
    assert split.overflowing


def test_parse_block_fields():
    event = parse_block(b": hi\nevent: error\nid: 7\nretry: 100\nfoo: bar\ndata:{\"a\":\ndata: 1}")
    assert event == Event(
        data=b'{"a":\n1}',
        name=b"error",
        comments=(b": hi",),
        unknown=(b"foo: bar",),
        spaceless=True,
    )


def test_data_without_space_is_noted():
    assert parse_block(b"data:x").spaceless
    assert not parse_block(b"data: x").spaceless
    assert not parse_block(b"data:").spaceless


def test_encoding():
    assert encode_data(b"[DONE]") == b"data: [DONE]\n\n"
    assert encode_comment(b": keep-alive") == b": keep-alive\n\n"
