"""The responses the bridge produced, kept so `previous_response_id`, item references and
`GET`/`DELETE /v1/responses/{id}` work against an upstream that keeps nothing.

Contract: `ResponseStore(max_bytes)` keeps, per API key, the responses put in
it, as compact JSON: the Response object, its own items (the request's input
items, then its output items, as Responses items) and the id of the response
it continued. A conversation is the chain of those (`context`), so a long
chain costs each turn's bytes once, not the whole conversation again per
turn. It holds at most `max_bytes`, least recently used dropped first (0
keeps nothing; reading a chain uses every response in it); `resize` changes
the bound. Entries are scoped by `key_scope(headers)`, a hash of the API key
that made them: another key finds nothing, and the key itself is never kept.
`lookup(scope)` is what a request's translation may find there. A request
with `store: false` (Codex's) puts nothing here. A response continuing one
that was dropped or deleted cannot be continued either: its conversation has
a hole (the client gets OpenAI's previous_response_not_found).

In memory, in one process: a restart, or another mitmdump behind a balancer,
does not know these ids (the client gets OpenAI's not-found error).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...keys import KEY_HEADERS
from ...wire.jsonio import NotJSON, dump, loads


def key_scope(headers: Mapping[str, str]) -> str:
    """A short hash of the request's API key ("" when it sent none): entries are kept per key."""
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value:
            return hashlib.sha256(f"{name}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return ""


@dataclass
class Lookup:
    """The store, as the translation sees it: `previous(id)` the items of a stored response
    (None if unknown), `item(id)` one item of any stored response."""

    previous: Callable[[str], list[Any] | None] = lambda response_id: None
    item: Callable[[str], Any | None] = lambda item_id: None


@dataclass(slots=True)
class _Entry:
    response: bytes  # the Response object
    items: bytes  # its own items: the request's input items, then its output items
    previous: str | None  # the response it continued (previous_response_id)
    item_ids: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.response) + len(self.items) + len(self.previous or "") + sum(len(i) for i in self.item_ids) + 200


class ResponseStore:
    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._items: dict[tuple[str, str], str] = {}  # (scope, item id) -> response id

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._evict()

    def put(self, scope: str, response: dict[str, Any], items: list[Any], previous: str | None = None) -> bool:
        """Keeps a finished response, its own items (input, then output) and the response it
        continued; False when it does not fit at all."""
        response_id = response.get("id")
        if not isinstance(response_id, str):
            return False
        item_ids = tuple(item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str))
        entry = _Entry(dump(response), dump(items), previous, item_ids)
        if entry.size > self.max_bytes:
            return False
        self.delete(scope, response_id)
        self._entries[(scope, response_id)] = entry
        self.bytes += entry.size
        for item_id in item_ids:
            self._items[(scope, item_id)] = response_id
        self._evict()
        return True

    def lookup(self, scope: str) -> Lookup:
        """What a request of this key may refer to."""
        return Lookup(previous=lambda rid: self.context(scope, rid), item=lambda iid: self.item(scope, iid))

    def response(self, scope: str, response_id: str) -> dict[str, Any] | None:
        entry = self._get(scope, response_id)
        return None if entry is None else _loads(entry.response)

    def context(self, scope: str, response_id: str) -> list[Any] | None:
        """The conversation a stored response ended (what `previous_response_id` continues):
        the items of every response in its chain, oldest first, then its own. None when it,
        or one it continued, is not kept: a conversation is never sent with a hole in it."""
        chain: list[_Entry] = []
        at: str | None = response_id
        while at is not None:
            entry = self._get(scope, at)
            if entry is None or len(chain) > len(self._entries):  # gone, or a loop (ids were reused)
                return None
            chain.append(entry)
            at = entry.previous
        items: list[Any] = []
        for entry in reversed(chain):
            items += _loads(entry.items) or []
        return items

    def item(self, scope: str, item_id: str) -> Any | None:
        """One item of any stored response of this key, by its id (`item_reference`)."""
        response_id = self._items.get((scope, item_id))
        entry = None if response_id is None else self._get(scope, response_id)
        for item in (_loads(entry.items) or []) if entry is not None else ():
            if isinstance(item, dict) and item.get("id") == item_id:
                return item
        return None

    def delete(self, scope: str, response_id: str) -> bool:
        entry = self._entries.pop((scope, response_id), None)
        if entry is None:
            return False
        self._forget(scope, response_id, entry)
        return True

    def _get(self, scope: str, response_id: str) -> _Entry | None:
        entry = self._entries.get((scope, response_id))
        if entry is not None:
            self._entries.move_to_end((scope, response_id))
        return entry

    def _evict(self) -> None:
        while self._entries and self.bytes > self.max_bytes:
            (scope, response_id), entry = self._entries.popitem(last=False)
            self._forget(scope, response_id, entry)

    def _forget(self, scope: str, response_id: str, entry: _Entry) -> None:
        self.bytes -= entry.size
        for item_id in entry.item_ids:
            if self._items.get((scope, item_id)) == response_id:
                del self._items[(scope, item_id)]


def _loads(data: bytes) -> Any:
    try:
        return loads(data)
    except NotJSON:  # it was written by dump: cannot happen, but a store must not raise
        return None
