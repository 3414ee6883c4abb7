"""openai-normalize: OpenAI-compatible upstreams answered in the shape their clients expect.

`normalize.mitm` is the mitmproxy addon (the only code that imports mitmproxy);
everything else is sans-I/O: bytes and JSON in, bytes and JSON out.
"""
