"""What mitmweb shows about a flow the addon touched: pure text, never mitmproxy.

  summary.describe            the one-line summary of what was repaired
  capped.CappedBuffer         keeps the first bytes of a body, counts the rest
  sse.sse_view                a stream, one line per event, JSON made compact
  assembled.assembled_view    the message a client builds from a reply, in its API:
    chat.chat_view            a chat reply (and its steps, for the bridged views)
    responses.responses_view  a Responses stream or object (the bridge's replies), and
                              the upstream's chat reply beside it (bridged_view)
    anthropic.anthropic_view  an Anthropic stream or message, and the upstream's chat
                              reply beside it (translated_view)
  diff.before_after_view      the upstream's events beside the ones sent
  text                        what every view shares: one-line text, blocks, the guard

They run when someone clicks in mitmweb, so each renders at most
events.MAX_EVENTS events and cuts very long lines.
"""
