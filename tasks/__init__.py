"""One Prefect task per stage: read inputs through `storage`, call `dreamedit3d_core`, write through `storage`.

Importing this package sets Prefect's offline defaults (before prefect itself is imported), so nothing
but loopback traffic ever leaves the machine. Explicit environment settings win.
"""

import os

_OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}
for _name, _value in _OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
