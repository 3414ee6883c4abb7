"""What the two bridges (responses/: OpenAI's Responses API, messages/: Anthropic's Messages API)
share: each puts a client's request to a chat-only upstream and answers in the client's API.

  exchange.py  BridgeExchange: a chat exchange answered in another API (the ChatExchange
               hooks it fills), and the chat path a bridged request goes to
  sink.py      BridgeSink: when a bridged stream's events are written (the ChunkSink
               policy); each bridge's sink only writes them
  usage.py     the one reading of a chat usage object
  tokens.py    the estimate of a request's input tokens
"""
