"""What mitmweb shows about a flow the addon touched: pure text, never mitmproxy.

  summary.describe            the one-line summary of what was repaired
  capped.CappedBuffer         keeps the first bytes of a body, counts the rest
  sse.sse_view                a stream, one line per event, JSON made compact
  assembled.assembled_view    the message a client builds from a reply
  diff.before_after_view      the upstream's events beside the ones sent
  responses.responses_view    the same for a Responses stream or object (the bridge's replies),
                              and the upstream's chat reply beside it (bridged_view)

They run when someone clicks in mitmweb, so each renders at most
events.MAX_EVENTS events and cuts very long lines.
"""
