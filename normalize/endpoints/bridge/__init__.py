"""What the two bridges (responses/: OpenAI's Responses API, messages/: Anthropic's Messages API)
share: each puts a client's request to a chat-only upstream and answers in the client's API.

  exchange.py  BridgeExchange: a chat exchange answered in another API (the hooks it fills),
               and the chat path a bridged request goes to
"""
