"""Connection tracking entries through netlink (pyroute2), in the network namespace of the process.

Reading gives plain JSON-able dicts (the original direction of each flow); deleting names each
entry by its original tuple, so only those flows go: the table is never flushed.
"""

from __future__ import annotations

import socket
from typing import Any

from gatewayctl.host.errors import HostError

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite"}
NUMBERS = {name: number for number, name in PROTOCOLS.items()}


FAMILIES = (socket.AF_INET, socket.AF_INET6)


def warm() -> None:
    """Import the netlink library now (0.15 s), so a later list or delete does not wait for it."""
    from pyroute2 import Conntrack  # noqa: F401


def _conntrack(family: int) -> Any:
    """A conntrack netlink socket for one address family (the kernel dumps one family per request;
    AF_UNSPEC answers with IPv4 only)."""
    try:
        from pyroute2 import Conntrack
    except ImportError as exc:  # pragma: no cover - pyroute2 is a dependency
        raise HostError(f"cannot read connection tracking: {exc}") from None
    try:
        return Conntrack(nfgen_family=family)
    except Exception as exc:
        raise HostError(f"cannot open the connection tracking netlink socket: {exc}") from None


def list_flows() -> list[dict[str, Any]]:
    """Every tracked flow, as {family, proto, src, dst, sport, dport} of its original direction."""
    flows = []
    for family in FAMILIES:
        with _conntrack(family) as ct:
            try:
                for entry in ct.dump_entries():
                    flows.append(_raw(entry.tuple_orig))
            except Exception as exc:
                raise HostError(f"cannot list connection tracking entries: {exc}") from None
    return flows


def _raw(orig: Any) -> dict[str, Any]:
    return {"family": 6 if orig.family == socket.AF_INET6 else 4, "proto": PROTOCOLS.get(orig.proto, str(orig.proto)),
            "src": orig.saddr, "dst": orig.daddr, "sport": orig.sport, "dport": orig.dport,
            "icmp_id": orig.icmp_id, "icmp_type": orig.icmp_type}


def delete_flows(flows: list[dict[str, Any]]) -> int:
    """Delete these flows (by original tuple); return how many were deleted (gone already is not an error)."""
    deleted = 0
    for family in FAMILIES:
        deleted += _delete(family, [f for f in flows if (f["family"] == 6) == (family == socket.AF_INET6)])
    return deleted


def _delete(family: int, flows: list[dict[str, Any]]) -> int:
    from pyroute2.conntrack import NFCTAttrTuple

    if not flows:
        return 0
    deleted = 0
    with _conntrack(family) as ct:
        for flow in flows:
            proto = NUMBERS.get(flow["proto"]) or int(flow["proto"])
            icmp = flow["proto"] in ("icmp", "icmpv6")
            orig = NFCTAttrTuple(
                family=socket.AF_INET6 if flow["family"] == 6 else socket.AF_INET, saddr=flow["src"], daddr=flow["dst"],
                proto=proto, sport=None if icmp else flow["sport"], dport=None if icmp else flow["dport"],
                icmp_id=flow.get("icmp_id") if icmp else None, icmp_type=flow.get("icmp_type") if icmp else None,
                icmp_code=0 if icmp else None)
            try:
                ct.entry("del", tuple_orig=orig)
                deleted += 1
            except Exception as exc:
                if getattr(exc, "code", None) != 2:  # ENOENT: the flow ended meanwhile
                    raise HostError(f"cannot delete the tracked flow {flow['src']} -> {flow['dst']}: {exc}") from None
    return deleted
