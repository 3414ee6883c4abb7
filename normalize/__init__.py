"""The pure core of the normalizer: bytes and JSON in, OpenAI's shapes out. Never imports mitmproxy."""

from .config import Options
from .stream import ChatStream

__all__ = ["ChatStream", "Options"]
