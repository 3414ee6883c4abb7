"""Reasoning in chat replies: `<think>…</think>` split out of content, or reasoning folded into it.

Contract (`normalize_reasoning`): `split` (the default) sends the reasoning a
model writes into `content` as `<think>…</think>` as `reasoning_content`
instead, and the rest as content, character for character; `fold` does the
opposite for clients that show only content (`reasoning_content` becomes
`<think>…</think>` in content); `keep` changes nothing. `ReasoningRules`
rewrites stream chunks (after the chunk rules, chunks.py), `split_message` and
`fold_message` whole replies, `unfold_history` the client's history in `fold`
mode (NIM thinking models reject an assistant turn without its
reasoning_content).

Where a reasoning block is recognised, per choice (the README says the same):
- `<think>` opens one only at the start of the content, after nothing but
  white space; once other text has come, or a block has closed, every tag is
  text, so an answer that mentions `<think>` keeps it.
- The reply starts inside reasoning, with no opening tag, only when the
  model's family in the profile says so (QwQ, Nemotron-3-nano) and the
  request did not switch reasoning off; an opening tag it sends anyway is
  dropped, and a `reasoning_content` delta before any content ends the
  assumption (the server parses reasoning itself).
- A `</think>` that comes before any opening tag, while nothing but white
  space has been sent as content, makes the text before it (in the same
  chunk, or the whole content of a whole reply) reasoning. Text that was
  already sent cannot be taken back: the stream is not buffered.
- A tag cut across chunks (`<thi` + `nk>`) is recognised: the end of a chunk
  that may begin a tag is held until the choice's next chunk decides it, and
  released before the stream ends or fails.
Nothing else is held, and no character is lost, added or moved: for every
choice, the reasoning and content texts, read in stream order, are the
upstream's content with the recognised tags taken out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ...repairs import Repair

if TYPE_CHECKING:
    from .chunks import ChunkRules

SPLIT, FOLD, KEEP = "split", "fold", "keep"
OPEN, CLOSE = "<think>", "</think>"
CONTENT, REASONING = "content", "reasoning_content"
REASONING_KEYS = ("reasoning_content", "reasoning")

# Where one choice's content is, for `split`.
START: Final = 0  # nothing but white space so far: a <think> opens the block
ASSUMED: Final = 1  # the model starts inside reasoning (its profile says so); nothing seen yet
INSIDE: Final = 2  # inside a block opened by <think>
UNOPENED: Final = 3  # inside a block the model opened without the tag
AFTER: Final = 4  # after the block, or content that began with text: all content
# ... and for `fold`.
BEFORE_REASONING: Final = 0
IN_REASONING: Final = 1  # "<think>" sent, reasoning going out as content
AFTER_REASONING: Final = 2


@dataclass
class ThinkState:
    mode: int = START
    held: str = ""  # the end of the last content, which may begin a tag

    @property
    def reasoning(self) -> bool:
        return self.mode in (ASSUMED, INSIDE, UNOPENED)


Pieces = list[tuple[str, str]]


def split_text(state: ThinkState, text: str, note: Any) -> Pieces:
    """One content delta as (key, text) pieces, in order; advances `state`. `note(repair)` counts."""
    text, state.held = state.held + text, ""
    out: Pieces = []
    while text:
        mode = state.mode
        if mode == AFTER:
            out.append((CONTENT, text))
            break
        if mode in (START, ASSUMED):
            body = text.lstrip()
            space = text[: len(text) - len(body)]
            where = REASONING if mode == ASSUMED else CONTENT
            if body.startswith(OPEN):
                out.append((where, space))
                state.mode, text = INSIDE, body[len(OPEN) :]
            elif body and len(body) < len(CLOSE) and (OPEN.startswith(body) or CLOSE.startswith(body)):
                out.append((where, space))
                state.held = body  # `<thi`: the next chunk decides
                break
            elif mode == ASSUMED:
                if not body:
                    out.append((REASONING, space))
                    break
                note(Repair.think_open_tag_missing)
                state.mode = UNOPENED
            elif CLOSE in text and OPEN not in text[: text.find(CLOSE)]:
                # `</think>` before any <think>, with nothing sent yet: what came before it is reasoning.
                note(Repair.think_open_tag_missing)
                state.mode = UNOPENED
            else:
                out.append((CONTENT, text))
                if body:
                    state.mode = AFTER
                break
        else:  # INSIDE, UNOPENED
            end = text.find(CLOSE)
            if end >= 0:
                out.append((REASONING, text[:end]))
                state.mode, text = AFTER, text[end + len(CLOSE) :]
                continue
            keep = partial_tag(text)
            out.append((REASONING, text[: len(text) - keep]))
            state.held = text[len(text) - keep :]
            break
    return [(key, piece) for key, piece in out if piece]


def partial_tag(text: str) -> int:
    """How many characters at the end of `text` could begin `</think>` (0 to 7)."""
    at = text.rfind("<", max(0, len(text) - len(CLOSE) + 1))
    return len(text) - at if at >= 0 and CLOSE.startswith(text[at:]) else 0


def release(state: ThinkState) -> Pieces:
    """What `state` holds, given up as text: the stream ends, or the next chunk has no content."""
    held, state.held = state.held, ""
    if not held:
        return []
    return [(REASONING if state.reasoning else CONTENT, held)]


# -- stream chunks ---------------------------------------------------------------


class ReasoningRules:
    """Applies `split` or `fold` to the chunks the chunk rules produced. `epoch` grows
    whenever a choice's state changes, so the fast path drops templates learnt before."""

    def __init__(self, rules: ChunkRules, mode: str, opens_inside: bool) -> None:
        self.rules = rules
        self.mode = mode
        self.opens_inside = opens_inside

    def think(self, index: int) -> ThinkState:
        choice = self.rules.state.choices[index]
        if choice.think is None:
            choice.think = ThinkState(ASSUMED if self.opens_inside else START)
        return choice.think

    @property
    def holding(self) -> bool:
        return any(c.think is not None and c.think.held for c in self.rules.state.choices.values())

    def tags_matter(self) -> bool:
        """A `<` in choice 0's content could be (part of) a tag now."""
        choice = self.rules.state.choices.get(0)
        return self.mode == SPLIT and choice is not None and (choice.think is None or choice.think.mode != AFTER)

    def chunks(self, out: dict[str, Any] | None) -> list[dict[str, Any]]:
        if out is None:
            return []
        if self.mode == FOLD:
            for choice in out["choices"]:
                if isinstance(choice, dict):
                    self.fold(choice)
            return [out]
        before: list[dict[str, Any]] = []
        touched = False
        choices = self.rules.state.choices
        for choice in out["choices"]:
            if not isinstance(choice, dict):
                continue
            think = choices[choice["index"]].think
            if think is not None and think.mode == AFTER and not think.held:
                continue  # the common case: past the block, nothing held
            deltas = self.split(choice)
            if deltas is not None:
                touched = True
                before += [piece_chunk(out, choice, delta) for delta in deltas]
        if touched and said_nothing(out):
            return before  # it held nothing but tags, or text now held
        return [*before, out] if before else [out]

    def split(self, choice: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Rewrites one choice's delta in place; returns the deltas that must go before it
        (None: the delta is as it came)."""
        state = self.think(choice["index"])
        delta = choice["delta"]
        content = delta.get(CONTENT)
        if state.mode == ASSUMED and any(isinstance(delta.get(k), str) and delta[k] for k in REASONING_KEYS):
            state.mode = AFTER  # the server sends reasoning apart: its content is the answer
            self.changed()
        if not isinstance(content, str) or not content:
            if not state.held:
                return None
            self.changed()
            return [{key: text} for key, text in release(state)]  # held text comes first
        before = (state.mode, state.held)
        pieces = split_text(state, content, self.rules.note)
        if (state.mode, state.held) != before:
            self.changed()
        if pieces == [(CONTENT, content)]:
            return None
        self.rules.note(Repair.think_tags_in_content)
        first = "role" in delta
        others = {k: v for k, v in delta.items() if k not in (CONTENT, "role")}
        last = pieces.pop() if pieces and pieces[-1][0] not in others else None
        deltas = [{key: text} for key, text in pieces]
        new = {} if last is None else {last[0]: last[1]}
        new.update(others)
        if first and deltas:
            deltas[0] = first_delta(deltas[0])
        elif first:
            new = first_delta(new)
        delta.clear()
        delta.update(new)
        return deltas

    def fold(self, choice: dict[str, Any]) -> None:
        state = self.rules.state.choices[choice["index"]]
        delta = choice["delta"]
        key = next((k for k in REASONING_KEYS if isinstance(delta.get(k), str) and delta[k]), None)
        reasoning = delta.pop(key) if key is not None else ""
        content = delta.get(CONTENT)
        text = ""
        if reasoning:
            text = reasoning if state.fold == IN_REASONING else OPEN + reasoning
            self.set_fold(state, IN_REASONING)
        ends = (isinstance(content, str) and content) or delta.get("tool_calls") or choice.get("finish_reason")
        if state.fold == IN_REASONING and ends:
            text += CLOSE
            self.set_fold(state, AFTER_REASONING)
        if not text:
            return
        self.rules.note(Repair.reasoning_in_separate_field)
        items = list(delta.items())
        delta.clear()
        delta.update((k, v) for k, v in items if k == "role")
        delta[CONTENT] = text + (content if isinstance(content, str) else "")
        delta.update((k, v) for k, v in items if k not in ("role", CONTENT))

    def set_fold(self, state: Any, mode: int) -> None:
        if state.fold != mode:
            state.fold = mode
            self.changed()

    def changed(self) -> None:
        self.rules.state.epoch += 1

    def release(self) -> list[dict[str, Any]]:
        """Held text, and for `fold` the closing tag of reasoning still open: before the end."""
        out = []
        for index, choice in self.rules.state.choices.items():
            if choice.think is not None and choice.think.held:
                key, text = release(choice.think)[0]
                out.append(self.rules.closing_chunk([{"index": index, "delta": {key: text}, "finish_reason": None}]))
            if choice.fold == IN_REASONING:
                choice.fold = AFTER_REASONING
                self.rules.note(Repair.reasoning_in_separate_field)
                out.append(self.rules.closing_chunk([{"index": index, "delta": {CONTENT: CLOSE}, "finish_reason": None}]))
        if out:
            self.changed()
        return out


_ENVELOPE = frozenset({"id", "object", "created", "model", "system_fingerprint"})
_CHOICE_KEYS = frozenset({"index", "delta", "logprobs", "finish_reason"})


def first_delta(delta: dict[str, Any]) -> dict[str, Any]:
    """A choice's first delta as OpenAI writes it: the role, then content ("" when it has none)."""
    if CONTENT in delta or "tool_calls" in delta:
        return {"role": "assistant", **delta}
    return {"role": "assistant", CONTENT: "", **delta}


def said_nothing(out: dict[str, Any]) -> bool:
    """The splitter took all a chunk said (a chunk the rules left empty never gets here)."""
    choices = out["choices"]
    return (
        bool(choices)
        and out.keys() <= _ENVELOPE | {"choices"}
        and all(
            isinstance(c, dict) and not c["delta"] and c["finish_reason"] is None and c.get("logprobs") is None and c.keys() <= _CHOICE_KEYS
            for c in choices
        )
    )


def piece_chunk(out: dict[str, Any], choice: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """A chunk of its own for one piece of a choice's text, with `out`'s envelope."""
    new: dict[str, Any] = {"index": choice["index"], "delta": delta}
    if "logprobs" in choice:
        new["logprobs"] = None
    new["finish_reason"] = None
    return {**{k: v for k, v in out.items() if k in _ENVELOPE}, "choices": [new]}


# -- whole replies and history -----------------------------------------------------------


def split_message(message: dict[str, Any], opens_inside: bool, note: Any) -> dict[str, Any]:
    """A whole reply's message with `<think>…</think>` in its content as reasoning_content
    (the same rules as a stream that sent the content in one chunk)."""
    content = message.get(CONTENT)
    if not isinstance(content, str) or not content:
        return message
    native = message.get(REASONING)
    state = ThinkState(ASSUMED if opens_inside and not native else START)
    pieces = split_text(state, content, note) + release(state)
    if pieces == [(CONTENT, content)]:
        return message
    note(Repair.think_tags_in_content)
    reasoning = "".join(text for key, text in pieces if key == REASONING)
    out = {k: v for k, v in message.items() if k != REASONING}
    out[CONTENT] = "".join(text for key, text in pieces if key == CONTENT)
    out[REASONING] = (native if isinstance(native, str) else "") + reasoning
    return out


def fold_message(message: dict[str, Any], note: Any) -> dict[str, Any]:
    """A whole reply's reasoning as `<think>…</think>` at the start of its content."""
    key = next((k for k in REASONING_KEYS if isinstance(message.get(k), str) and message[k]), None)
    if key is None:
        return message
    note(Repair.reasoning_in_separate_field)
    content = message.get(CONTENT)
    out = {k: v for k, v in message.items() if k != key}
    out[CONTENT] = OPEN + message[key] + CLOSE + (content if isinstance(content, str) else "")
    return out


def unfold_history(body: dict[str, Any], note: Any) -> dict[str, Any]:
    """`fold` gave the client its reasoning inside content; its history sends it back so.
    Assistant messages that open with `<think>…</think>` get it back as reasoning_content."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    new = [unfold(m, note) for m in messages]
    return body if all(a is b for a, b in zip(new, messages, strict=True)) else {**body, "messages": new}


def unfold(message: Any, note: Any) -> Any:
    if not isinstance(message, dict) or message.get("role") != "assistant" or REASONING in message:
        return message
    content = message.get(CONTENT)
    if not isinstance(content, str) or not content.startswith(OPEN) or CLOSE not in content:
        return message
    reasoning, _, rest = content[len(OPEN) :].partition(CLOSE)
    note(Repair.think_tags_in_history)
    out = dict(message)
    out[CONTENT] = None if not rest and message.get("tool_calls") else rest
    out[REASONING] = reasoning
    return out
