"""`POST …/responses` and `GET`/`DELETE …/responses/{id}`: OpenAI's Responses API on a chat-only upstream.

The bridge, one module per concern:
  exchange.py      the endpoints: the request sent upstream as chat, the reply answered as a Response
  request.py       a Responses body as a chat body (instructions, input items, parameters)
  tools.py         Responses tools as chat tools, and the names that map calls back
  sink.py          the chat stream, repaired, written as Responses events (a ChunkSink)
  items.py         the output items the sink builds: kinds, text event types, item objects
  reply.py         a whole chat.completion as a Response object
  custom_input.py  a custom tool's input read out of streaming chat arguments
  shapes.py        the Response object, usage, ids, text spliced as JSON literals
  store.py         responses kept for previous_response_id and GET/DELETE, per API key
  cursor.py        Cursor's agent mode: a Responses body on the chat path, answered as chat
"""
