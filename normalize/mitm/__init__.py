"""The mitmproxy glue: the only part of the package that imports mitmproxy.

addon.py      the hooks: guard, route, delegate
options.py    the `normalize_*` options, parsed into the core's Settings
state.py      per-flow state, on the flow itself
streaming.py  the response.stream callable: decoding, the endpoint's transducer, capped copies
record.py     what is left on a flow (comment, metadata, kept bodies) and redaction
views.py      mitmweb's content views
"""

from .addon import Normalize
from .views import register as register_views

__all__ = ["Normalize", "register_views"]
