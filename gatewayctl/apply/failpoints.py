"""Fail points for fault-injection tests: GATEWAYCTL_FAILPOINT=NAME:ACTION.

ACTION is `raise` (fail as if the host refused) or `sleep=SECONDS` (hold still, e.g. to be killed).
Unset in normal use; the names are the steps of apply (see engine.py).
"""

from __future__ import annotations

import os
import time

from gatewayctl.host.errors import HostError


def checkpoint(name: str) -> None:
    spec = os.environ.get("GATEWAYCTL_FAILPOINT", "")
    point, _, action = spec.partition(":")
    if point != name:
        return
    if action == "raise":
        raise HostError(f"fail point {name} triggered")
    if action.startswith("sleep="):
        time.sleep(float(action[6:]))
