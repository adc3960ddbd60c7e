"""Fail points for fault-injection tests: GATEWAYCTL_FAILPOINT=NAME:ACTION.

ACTION is `raise` (fail as if the host refused) or `sleep=SECONDS` (hold still, e.g. to be killed).
`NAME:corrupt` at a ruleset step (`load-narrowed`, `load-full`) spoils the text so the real kernel
refuses it. Unset in normal use; the names are the steps of apply (see engine.py, POINTS).
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


POINTS = ("after-guard", "after-create", "after-narrow", "after-peers", "before-widen", "after-widen")
RULESET_POINTS = ("load-narrowed", "load-full")


def spoil(name: str, text: str) -> str:
    """The ruleset text as loaded at step `name`: spoiled (an unknown statement) when the fail point says so."""
    point, _, action = os.environ.get("GATEWAYCTL_FAILPOINT", "").partition(":")
    if point == name and action == "corrupt":
        return text + "\ntable inet gatewayctl_failpoint { chain c { no-such-statement } }\n"
    return text
