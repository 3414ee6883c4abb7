"""The mitmproxy glue: the only part of the package that imports mitmproxy.

addon.py      the hooks: guard, route, delegate
apply.py      calling the endpoint (one guard), and applying its request, answer or reply to the flow
options.py    the `normalize_*` options, parsed into the core's Settings
state.py      per-flow state, on the flow itself
streaming.py  the response.stream callable: decoding, the endpoint's transducer, capped copies
whole.py      whole replies read within the caps, collected by the addon when mitmproxy streams them
record.py     what is left on a flow (comment, metadata, kept bodies), redaction, the flows holding keys
views.py      mitmweb's content views
"""

from .addon import Normalize
from .views import register as register_views

__all__ = ["Normalize", "register_views"]
