"""The Responses endpoints: `POST …/responses` bridged to `POST …/chat/completions`, and
`GET`/`DELETE …/responses/{id}` (and `…/{id}/input_items`) answered from the store.

Contract: with `normalize_responses=bridge` (the default), `RESPONSES.open`
translates the body (request.py), applies the chat request rules to it
(`ChatExchange.read_request`: aliases, dropped and renamed parameters) and
sends it to the same prefix's `chat/completions`. A streamed reply goes
through `ChatStream` with a `ResponsesSink`: every chat repair, then
Responses events. A whole reply is repaired as a chat.completion, then
answered as a Response (reply.py); errors are the chat exchange's (OpenAI's
envelope, the status a client should act on). What OpenAI would refuse (an unknown previous response, a
body that is no JSON object) is answered by the proxy, never sent upstream.
Finished responses are kept (store.py) unless the request said `store: false`.
With `normalize_responses=pass`, everything passes as it came (errors are
still made OpenAI's shape).
"""

from __future__ import annotations

import logging
from typing import Any

from ...repairs import Repair
from ...wire.jsonio import NotJSON, dump, loads
from ..base import Env, Exchange, Forward, Reply, Request
from ..bridge.exchange import BridgeExchange, chat_path
from ..bridge.tokens import estimate_input_tokens
from ..errors import openai_error
from .reply import to_response
from .request import Bridged, BridgeError, to_chat
from .shapes import Shell
from .sink import ResponsesSink
from .store import key_scope

log = logging.getLogger(__name__)


class ResponsesExchange(BridgeExchange):
    verb = "bridged responses -> chat"

    def __init__(self, env: Env, request: Request, body: dict[str, Any], bridged: Bridged) -> None:
        super().__init__(env)
        self.scope = key_scope(request.headers)
        self.keep = body.get("store") is not False
        previous = body.get("previous_response_id")
        self.previous = previous if isinstance(previous, str) and previous else None
        self.bridged = bridged
        self.repairs.update(bridged.repairs)
        chat = self.read_request(bridged.chat)
        model = body.get("model")
        self.shell = Shell(body, model if isinstance(model, str) else "", input_tokens=estimate_input_tokens(chat))
        self.forward = Forward(body=dump(chat), path=chat_path(request))

    def sink(self) -> ResponsesSink:
        return ResponsesSink(self.shell, self.bridged.tools, self.repairs, on_end=self._keep, label=self.env.label)

    def reply_of(self, completion: dict[str, Any]) -> dict[str, Any]:
        response = to_response(completion, self.shell, self.bridged.tools, self.repairs)
        self._keep(dump(response))
        return response

    def _keep(self, response_json: bytes) -> None:
        if not self.keep:
            return
        try:
            response = loads(response_json)
        except NotJSON:
            return
        store = self.env.shared.responses
        output = response.get("output") if isinstance(response.get("output"), list) else []
        if not store.put(self.scope, response, self.bridged.input + output, self.previous) and store.max_bytes:
            log.info("%s: response %s is larger than normalize_responses_store_bytes; not kept", self.env.label, response.get("id"))


class Responses:
    name = "responses"

    def open(self, request: Request, env: Env) -> Exchange:
        if env.settings.responses != "bridge":
            return Exchange(env)
        body = request.json()
        if request.body is None:  # past normalize_max_body_bytes, or an encoding that did not decode
            log.warning("%s: the Responses request was not read (%s); answering 413", env.label, request.problem)
            exchange = Exchange(env)
            message = f"The request body was not read: {request.problem}."
            exchange.answer = Reply.json(413, openai_error(message, 413, code="request_too_large"))
            exchange.repairs[Repair.request_not_bridgeable] += 1
            return exchange
        if not isinstance(body, dict):
            why = request.problem or ("the body is not a JSON object" if request.body else "there is no body")
            log.warning("%s: not a Responses request (%s); answering 400", env.label, why)
            exchange = Exchange(env)
            exchange.answer = Reply.json(400, openai_error("We could not parse the JSON body of your request.", 400))
            exchange.repairs[Repair.request_not_bridgeable] += 1
            return exchange
        try:
            bridged = to_chat(body, env.shared.responses.lookup(key_scope(request.headers)), label=env.label)
        except BridgeError as e:
            log.info("%s: answered %d: %s", env.label, e.status, e.error["error"]["message"])
            exchange = Exchange(env)
            exchange.verb = ResponsesExchange.verb
            exchange.answer = Reply.json(e.status, e.error)
            return exchange
        return ResponsesExchange(env, request, body, bridged)


class StoredResponses:
    """`GET …/responses/{id}`, `GET …/responses/{id}/input_items`, `DELETE …/responses/{id}`."""

    name = "responses store"

    def open(self, request: Request, env: Env) -> Exchange:
        exchange = Exchange(env)
        if env.settings.responses != "bridge":
            return exchange
        exchange.verb = "answered from the responses store"
        parts = [part for part in request.path.split("/") if part]
        after = parts[len(parts) - 1 - parts[::-1].index("responses") + 1 :]
        response_id, rest = after[0], after[1:]
        store, scope = env.shared.responses, key_scope(request.headers)
        found = store.response(scope, response_id)
        if found is None or rest not in ([], ["input_items"]) or (rest and request.method != "GET"):
            exchange.answer = Reply.json(404, openai_error(f"Response with id '{response_id}' not found.", 404))
        elif request.method == "DELETE":
            store.delete(scope, response_id)
            exchange.answer = Reply.json(200, {"id": response_id, "object": "response", "deleted": True})
        elif rest:
            exchange.answer = Reply.json(200, input_items(store.context(scope, response_id) or [], found))
        else:
            exchange.answer = Reply.json(200, found)
        return exchange


def input_items(context: list[Any], response: dict[str, Any]) -> dict[str, Any]:
    """The items a response was given (its conversation without its own output), newest first as OpenAI lists them."""
    output = response.get("output") if isinstance(response.get("output"), list) else []
    given = context[: len(context) - len(output)] if output else context
    data = [item for item in reversed(given) if isinstance(item, dict)]
    ids = [item.get("id") for item in data]
    return {"object": "list", "data": data, "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None, "has_more": False}


RESPONSES = Responses()
STORED_RESPONSES = StoredResponses()
