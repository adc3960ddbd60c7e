"""The addresses on this namespace's interfaces (read-only): which node of a pair holds the floating address."""

from __future__ import annotations


def local_addresses() -> frozenset[str]:
    """Every address on every interface of the current network namespace, without prefix length."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return frozenset(str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr())
