"""openai-normalize, the script to pass to mitmproxy: `mitmdump -s addon.py` (or mitmweb).

OpenAI-compatible upstreams answered in the shape their clients expect; the
code is the `normalize` package beside this file (see the README's "How the
code is laid out").
"""

from normalize.mitm import Normalize, register_views

register_views()
addons = [Normalize()]
