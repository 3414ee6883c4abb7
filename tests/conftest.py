import os

from hypothesis import HealthCheck, settings

# "fast" for make test: derandomized, so a run is the same every time (a landing is never blocked
# by an example found by chance); NORMALIZE_HYPOTHESIS=deep for a long, random search.
settings.register_profile("fast", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("NORMALIZE_HYPOTHESIS", "fast"))
