"""Element timers in a rollback record, kept as end instants: a rollback that runs later (the
dead-man timer of `apply --confirm-timeout`, seconds to a day after the apply) puts elements back
ending when they ended before, never later.

The live table gives each element's time left at the moment it was listed; the record keeps
`listed_at + left` (listed_at taken before the listing, so the end is never later than the kernel's)
and the rollback turns it back into time left at the moment it runs. An element whose end has
passed meanwhile is not put back. Tested in tests/test_apply_engine.py (fake host, a moved clock) and
tests/test_ansible.py (the canary rolled back by its timer keeps every grant's end instant).
"""

from __future__ import annotations

import math
import re
import time

from gatewayctl.host.nftstate import NftSet
from gatewayctl.render.environment import nft_timeout

_DURATION = re.compile(r"(\d+)(ms|d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_EXPIRES = re.compile(r"\bexpires ((?:\d+(?:ms|d|h|m|s))+)")


def ends_of(live: NftSet, keys: list[str] | None, listed_at: float) -> dict[str, float]:
    """The end instant (unix time) of each of `keys` (None: every element) that has a timer."""
    return {k: listed_at + left for k, left in live.expires.items() if keys is None or k in keys}


def element_text(key: str, comment: str | None, end: float | None, now: float) -> str | None:
    """The element as `add element` takes it, with the time left until `end`; None when it has ended."""
    text = key
    if end is not None:
        left = math.floor(end - now)  # down: never longer than it had
        if left < 1:
            return None
        text += f" timeout {nft_timeout(left)}"
    if comment is not None:
        text += f' comment "{comment}"'
    return text


def seconds(duration: str) -> float:
    """nft's duration text (3d4h, 59s840ms) in seconds."""
    return sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(duration))


def aged(nft_text: str, elapsed: float) -> str:
    """`nft list` text with every `expires` shortened by `elapsed` seconds (at least 1 s is left: the
    elements whose end has passed are deleted in the same transaction, see restore)."""
    def shorter(match: re.Match[str]) -> str:
        left = max(math.floor(seconds(match.group(1)) - elapsed), 1)
        return f"expires {nft_timeout(left)}"

    return _EXPIRES.sub(shorter, nft_text) if elapsed > 0 else nft_text


def now() -> float:
    return time.time()
