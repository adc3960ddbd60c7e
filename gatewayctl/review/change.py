"""The record of one difference between two revisions, shared by every comparison."""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY = ""  # the `partner` of a gateway-wide change (gateway.yaml)


@dataclass(frozen=True, order=True)
class Change:
    """One difference a reviewer should see; `risk` says why a security reviewer must look."""

    partner: str
    kind: str
    subject: str
    detail: str
    risk: str = ""
    gateway: str = ""  # in an estate of several gateways: the gateway whose access changes
