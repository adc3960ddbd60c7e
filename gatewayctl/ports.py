"""Port range arithmetic shared by validation and compilation."""

from __future__ import annotations

PortRange = tuple[int, int]


def merge(ranges: list[PortRange]) -> list[PortRange]:
    """Return the sorted union of inclusive ranges, adjacent ranges joined."""
    merged: list[PortRange] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def contained(candidate: PortRange, offered: list[PortRange]) -> bool:
    """True when every port of `candidate` is in the union of `offered`."""
    return any(first <= candidate[0] and candidate[1] <= last for first, last in merge(offered))
