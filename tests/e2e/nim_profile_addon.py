"""addon.py as a test rig for NIM: every targeted host gets the `nim` profile.

`mitmdump -s tests/e2e/nim_profile_addon.py`: the local scripted upstreams on
127.0.0.1 stand in for integrate.api.nvidia.com, whose profile is chosen by its
host name. Nothing else differs from addon.py. (Issue #14 item 1 adds a
per-host profile option; once merged, `--set normalize_profile=HOST=nim` with
addon.py does the same.)
"""

from normalize.mitm import Normalize, register_views
from normalize.mitm import addon as glue
from normalize.profiles import PROFILES

glue.profile_for = lambda host: PROFILES["nim"]  # type: ignore[assignment]

register_views()
addons = [Normalize()]
