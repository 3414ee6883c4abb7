"""Wire-level code shared by every endpoint: SSE framing, JSON in and out, bodies and their encodings."""
