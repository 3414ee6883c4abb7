"""Reasoning (endpoints/chat/think.py): `<think>` split out of content, reasoning folded into it.

One test per Repair (named after it), the rules for where a block is
recognised, the fast path kept exact, and properties: any split of the bytes
and any placement of the tags give back the upstream's text, with the tags
taken out, in order; `fold` then `split` is the identity.
"""

import json

from hypothesis import assume, given
from hypothesis import strategies as st

from normalize.endpoints.chat.completion import rewrite_completion
from normalize.endpoints.chat.options import Options
from normalize.endpoints.chat.stream import ChatStream
from normalize.endpoints.chat.think import ThinkState, split_text, unfold_history
from normalize.repairs import Repair
from tests.test_stream import split_points

PINNED = {"make_id": lambda: "chatcmpl-synth", "make_call_id": lambda: "call_synth", "now": lambda: 1700000000}


def options(**kw):
    return Options(**PINNED, **kw)


def chunk(delta, finish_reason=None, index=0):
    body = {
        "id": "chatcmpl-r1",
        "object": "chat.completion.chunk",
        "created": 1738000000,
        "model": "deepseek-ai/deepseek-r1",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def stream_of(contents, reasoning=(), finish="stop"):
    """NIM's shape: a role chunk, reasoning_content pieces, content pieces, a finish chunk."""
    events = [chunk({"role": "assistant", "content": None})]
    events += [chunk({"role": None, "content": None, "reasoning_content": r}) for r in reasoning]
    events += [chunk({"role": None, "content": c, "reasoning_content": None}) for c in contents]
    events += [chunk({"content": None}, finish), b"data: [DONE]\n\n"]
    return b"".join(events)


def run(pieces, opts):
    stream = ChatStream(opts)
    out = b"".join(stream.feed(p) for p in pieces) + stream.close()
    return out, stream


def deltas(body):
    """Every delta a client reads, in order, as (key, text) for the text keys."""
    out = []
    for event in body.split(b"\n\n"):
        if not event.startswith(b"data: {"):
            continue
        for choice in json.loads(event[6:]).get("choices", []):
            for key in ("reasoning_content", "content"):
                text = choice["delta"].get(key)
                if text:
                    out.append((key, text))
    return out


def texts(body):
    got = deltas(body)
    return "".join(t for k, t in got if k == "reasoning_content"), "".join(t for k, t in got if k == "content")


def in_order(body):
    return "".join(t for _, t in deltas(body))


# -- one test per repair -------------------------------------------------------------


def test_think_tags_in_content():
    # DeepSeek-R1 on NIM (lobehub #5868): the reasoning inside content, the tags cut anywhere.
    body = stream_of(["<thi", "nk>\nOkay", ", the user says hi.\n</th", "ink>\n\nHello", "!"])
    out, stream = run([body], options())
    assert texts(out) == ("\nOkay, the user says hi.\n", "\n\nHello!")
    assert deltas(out) == [
        ("reasoning_content", "\nOkay"),
        ("reasoning_content", ", the user says hi.\n"),
        ("content", "\n\nHello"),
        ("content", "!"),
    ]
    assert stream.repairs[Repair.think_tags_in_content] == 4  # "<thi" held, then three rewritten
    first = json.loads(out.split(b"\n\n")[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert out.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def test_think_open_tag_missing():
    # QwQ (litellm #10848) and Nemotron-3-nano: the stream starts inside reasoning, only </think> comes.
    body = stream_of(["Okay", ", so", "</think>", "\n\nHi"])
    out, stream = run([body], options(opens_inside=True))
    assert texts(out) == ("Okay, so", "\n\nHi")
    assert stream.repairs[Repair.think_open_tag_missing] == 1
    # Without the profile saying so, the same stream is content, and the tag stays visible.
    out, stream = run([body], options())
    assert texts(out) == ("", "Okay, so</think>\n\nHi")
    assert not stream.repairs[Repair.think_open_tag_missing]
    # ... unless </think> comes before any content was sent: what precedes it is reasoning.
    out, stream = run([stream_of(["Okay, so</think>\n\nHi", "!"])], options())
    assert texts(out) == ("Okay, so", "\n\nHi!")
    assert stream.repairs[Repair.think_open_tag_missing] == 1


def test_reasoning_in_separate_field():
    # fold: content-only clients see the reasoning as <think>…</think> at the start of content.
    body = stream_of(["Hey", "!"], reasoning=["Hmm", ", hi."])
    out, stream = run([body], options(reasoning="fold"))
    assert deltas(out) == [("content", "<think>Hmm"), ("content", ", hi."), ("content", "</think>Hey"), ("content", "!")]
    assert stream.repairs[Repair.reasoning_in_separate_field] == 3


def test_think_tags_in_history():
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "<think>Hmm.</think>Hello!"},
            {"role": "assistant", "content": "<think>A tool.</think>", "tool_calls": [{"id": "c", "type": "function"}]},
            {"role": "assistant", "content": "No reasoning here."},
            {"role": "assistant", "content": "<think>kept</think>x", "reasoning_content": "already"},
        ],
    }
    seen = []
    out = unfold_history(body, seen.append)
    assert out["messages"][1] == {"role": "assistant", "content": "Hello!", "reasoning_content": "Hmm."}
    assert out["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}], "reasoning_content": "A tool."}
    assert out["messages"][3:] == body["messages"][3:]
    assert seen == [Repair.think_tags_in_history] * 2
    assert body["messages"][1]["content"] == "<think>Hmm.</think>Hello!"  # not changed in place


# -- where a block is recognised ---------------------------------------------------


def split_all(text, mode=0):
    state = ThinkState(mode)
    return split_text(state, text, lambda r: None), state


def test_think_only_at_the_start():
    assert split_all("Use <think> tags</think> like so")[0] == [("content", "Use <think> tags</think> like so")]
    assert split_all("  \n<think>a</think>b")[0] == [("content", "  \n"), ("reasoning_content", "a"), ("content", "b")]
    # After the block, a second one is text.
    assert split_all("<think>a</think>b<think>c</think>")[0] == [("reasoning_content", "a"), ("content", "b<think>c</think>")]


def test_cut_tag_is_held_until_the_next_chunk():
    state = ThinkState()
    assert split_text(state, "<th", print) == [] and state.held == "<th"
    assert split_text(state, "e weather", print) == [("content", "<the weather")]
    state = ThinkState(2)  # INSIDE
    assert split_text(state, "so </thi", print) == [("reasoning_content", "so ")]
    assert split_text(state, "s is it", print) == [("reasoning_content", "</this is it")]


def test_held_text_is_released_at_the_end():
    out, _ = run([stream_of(["<think>abc</th"], finish=None)[: -len(b"data: [DONE]\n\n")]], options())
    assert texts(out) == ("abc</th", "")


def test_held_text_is_released_before_a_chunk_without_content():
    out, _ = run([stream_of(["<think>a</thi"])], options())
    assert deltas(out) == [("reasoning_content", "a"), ("reasoning_content", "</thi")]
    assert b'"finish_reason":"stop"' in out.split(b"\n\n")[-3]


def test_held_text_is_released_before_an_error():
    body = stream_of(["<think>a</th"])[: -len(b"data: [DONE]\n\n")]
    body = body.rsplit(b"data: ", 1)[0] + b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'
    out, _ = run([body], options())
    assert deltas(out)[-1] == ("reasoning_content", "</th")
    assert out.endswith(b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\ndata: [DONE]\n\n')


def test_server_reasoning_ends_the_assumption():
    # A model whose profile says it opens inside, served with a reasoning parser: content is the answer.
    out, _ = run([stream_of(["Hello"], reasoning=["Hmm"])], options(opens_inside=True))
    assert texts(out) == ("Hmm", "Hello")


def test_opening_tag_sent_anyway_is_dropped():
    out, _ = run([stream_of(["<think>", "Hmm", "</think>", "Hi"])], options(opens_inside=True))
    assert texts(out) == ("Hmm", "Hi")


def test_keep_changes_nothing():
    body = stream_of(["<think>Hmm</think>Hi"], reasoning=["r"])
    out, stream = run([body], options(reasoning="keep"))
    assert texts(out) == ("r", "<think>Hmm</think>Hi")
    assert not {Repair.think_tags_in_content, Repair.reasoning_in_separate_field} & set(stream.repairs)


def test_one_chunk_holding_the_whole_block_becomes_two():
    out, _ = run([stream_of(["<think>Hmm</think>Hi"])], options())
    events = [json.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert [e["choices"][0]["delta"] for e in events[:3]] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Hmm"},
        {"content": "Hi"},
    ]
    # On the first chunk, the role goes with the first piece.
    body = b"".join([chunk({"role": "assistant", "content": "<think>Hmm</think>Hi"}), chunk({}, "stop")])
    out, _ = run([body], options())
    events = [json.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert [e["choices"][0]["delta"] for e in events[:2]] == [
        {"role": "assistant", "content": "", "reasoning_content": "Hmm"},
        {"content": "Hi"},
    ]


def test_fold_closes_before_tool_calls_and_at_the_end():
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = b"".join([chunk({"role": "assistant", "content": None}), chunk({"reasoning_content": "Hmm"}), chunk({"tool_calls": [call]}), chunk({}, "tool_calls")])
    out, _ = run([body], options(reasoning="fold"))
    assert deltas(out) == [("content", "<think>Hmm"), ("content", "</think>")]
    out, _ = run([b"".join([chunk({"role": "assistant", "content": None}), chunk({"reasoning_content": "Hmm"})])], options(reasoning="fold"))
    assert deltas(out) == [("content", "<think>Hmm"), ("content", "</think>")]
    assert out.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


# -- whole replies -----------------------------------------------------------------


def completion(message):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


def test_whole_reply_split_and_fold():
    out, repairs = rewrite_completion(completion({"role": "assistant", "content": "<think>\nHmm\n</think>\n\nHi"}), options())
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "\n\nHi", "reasoning_content": "\nHmm\n"}
    assert repairs[Repair.think_tags_in_content] == 1
    out, repairs = rewrite_completion(completion({"role": "assistant", "content": "Hmm</think>Hi"}), options())
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hi", "reasoning_content": "Hmm"}
    assert repairs[Repair.think_open_tag_missing] == 1
    out, _ = rewrite_completion(completion({"role": "assistant", "content": "Hmm, still thinking"}), options(opens_inside=True))
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "", "reasoning_content": "Hmm, still thinking"}
    out, repairs = rewrite_completion(completion({"role": "assistant", "content": "Hi", "reasoning_content": "Hmm"}), options(reasoning="fold"))
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "<think>Hmm</think>Hi"}
    assert repairs[Repair.reasoning_in_separate_field] == 1
    message = {"role": "assistant", "content": "<think>Hmm</think>Hi"}
    out, repairs = rewrite_completion(completion(message), options(reasoning="keep"))
    assert out["choices"][0]["message"] == message and not repairs


# -- the fast path stays exact -------------------------------------------------------------


def test_fast_path_follows_the_reasoning_state():
    pieces = ["<think>", *["Hmm"] * 5, "</think>", *["Hi"] * 5, "<b>", "Hi"]
    body = stream_of(pieces)
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
    fast = ChatStream(options())
    out = b"".join(fast.feed(e) for e in events) + fast.close()
    slow_out, slow = run([body], options(fast_path=False))
    assert out == slow_out and fast.repairs == slow.repairs
    assert texts(out) == ("Hmm" * 5, "Hi" * 5 + "<b>Hi")
    assert fast.fast_path_uses >= 6  # inside the block and after it, each from its own template


def test_fast_path_splices_no_text_with_a_tag_while_inside():
    body = stream_of(["<think>", "a", "b", "c", "</think>", "d"])
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
    stream = ChatStream(options())
    out = b"".join(stream.feed(e) for e in events) + stream.close()
    assert texts(out) == ("abc", "d")


# -- properties ------------------------------------------------------------------------------

# Text built of tags, pieces of tags, and anything else, so tags land everywhere.
FRAGMENTS = ["<think>", "</think>", "<", "</", "<thi", "</thin", "nk>", "ink>", ">", "/", "think", " ", "\n", "東京", "🚀", '"', "\\"]
TAGGY = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=12).map("".join)


@st.composite
def chopped(draw, text):
    """`text` cut into non-empty pieces at any characters."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=12)))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if text[a:b]]


@given(st.sampled_from(["", "\n", " \n "]), TAGGY, TAGGY, st.data())
def test_split_gives_back_the_text_without_the_tags(space, reasoning, answer, data):
    assume("</think>" not in reasoning)
    upstream = space + "<think>" + reasoning + "</think>" + answer
    body = stream_of(data.draw(chopped(upstream)))
    out, _ = run(data.draw(split_points(body)), options())
    assert texts(out) == (reasoning, space + answer)
    assert in_order(out) == space + reasoning + answer
    fast_off, _ = run([body], options(fast_path=False))
    assert out == fast_off


@given(TAGGY, TAGGY, st.data())
def test_split_of_a_reply_opened_inside_reasoning(reasoning, answer, data):
    assume("</think>" not in reasoning and not reasoning.lstrip().startswith("<"))
    upstream = reasoning + "</think>" + answer
    out, _ = run(data.draw(split_points(stream_of(data.draw(chopped(upstream))))), options(opens_inside=True))
    assert texts(out) == (reasoning, answer)


@given(TAGGY, st.data())
def test_split_leaves_text_without_a_leading_block(text, data):
    assume(not text.lstrip().startswith("<") and "</think>" not in text)
    out, stream = run([stream_of(data.draw(chopped(text)))], options())
    assert texts(out) == ("", text)
    assert not stream.repairs[Repair.think_tags_in_content]


@given(st.lists(TAGGY.filter(lambda t: "</think>" not in t and t), min_size=1, max_size=6), st.lists(TAGGY, max_size=6), st.data())
def test_fold_then_split_is_the_identity(reasoning, answer, data):
    answer = [a for a in answer if a]
    body = stream_of(answer, reasoning=reasoning)
    folded, _ = run(data.draw(split_points(body)), options(reasoning="fold"))
    assert texts(folded) == ("", "<think>" + "".join(reasoning) + "</think>" + "".join(answer))
    back, _ = run(data.draw(split_points(folded)), options())
    assert texts(back) == ("".join(reasoning), "".join(answer))
