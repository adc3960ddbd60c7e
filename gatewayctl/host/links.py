"""Links, addresses, routes and forwarding through pyroute2 (netlink), in the current namespace."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from gatewayctl.host.errors import HostError

IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_KERNEL = 2


def _ipr() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def raw_link(ifname: str) -> dict[str, Any] | None:
    """Acquire the link, its addresses and its main-table routes as plain data (the snapshot half)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        index = found[0]
        link = ipr.get_links(index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        addresses = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)]
        routes = []
        for family in (2, 10):
            for r in ipr.get_routes(family=family, oif=index, table=RT_TABLE_MAIN):
                if r["proto"] != RTPROT_KERNEL and r.get_attr("RTA_DST"):
                    routes.append(f"{r.get_attr('RTA_DST')}/{r['dst_len']}")
        return {
            "name": ifname, "index": index, "up": bool(link["flags"] & IFF_UP), "mtu": link.get_attr("IFLA_MTU"),
            "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            "addresses": sorted(addresses), "routes": sorted(routes),
        }


def raw_forwarding() -> dict[str, str]:
    """The forwarding switches of the current namespace."""
    paths = {"ipv4": "/proc/sys/net/ipv4/ip_forward", "ipv6": "/proc/sys/net/ipv6/conf/all/forwarding"}
    return {key: Path(path).read_text().strip() if Path(path).exists() else "0" for key, path in paths.items()}


def create_wireguard(ifname: str) -> bool:
    """Create a kernel WireGuard link; False when the kernel has no WireGuard support."""
    from pyroute2 import NetlinkError

    with _ipr() as ipr:
        try:
            ipr.link("add", ifname=ifname, kind="wireguard")
        except NetlinkError as exc:
            if exc.code in (95, 2, 22):  # EOPNOTSUPP / ENOENT / EINVAL: no wireguard module
                return False
            raise HostError(f"cannot create interface {ifname}: {exc}") from None
    return True


def configure(ifname: str, mtu: int | None = None, up: bool | None = None) -> None:
    with _ipr() as ipr:
        index = _index(ipr, ifname)
        if mtu is not None:
            ipr.link("set", index=index, mtu=mtu)
        if up is not None:
            ipr.link("set", index=index, state="up" if up else "down")


def address(ifname: str, cidr: str, add: bool) -> None:
    iface = ipaddress.ip_interface(cidr)
    with _ipr() as ipr:
        ipr.addr("add" if add else "del", index=_index(ipr, ifname), address=str(iface.ip), prefixlen=iface.network.prefixlen)


def route(ifname: str, dst: str, add: bool) -> None:
    from pyroute2 import NetlinkError

    net = ipaddress.ip_network(dst)
    with _ipr() as ipr:
        try:
            ipr.route("add" if add else "del", dst=str(net), oif=_index(ipr, ifname), table=RT_TABLE_MAIN,
                      family=10 if net.version == 6 else 2)
        except NetlinkError as exc:
            raise HostError(f"cannot {'add' if add else 'remove'} route {dst} via {ifname}: {exc}") from None


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise HostError(f"interface {ifname} does not exist")
    return int(found[0])


def delete(ifname: str) -> None:
    """Delete a link; gone already is not an error."""
    from pyroute2 import NetlinkError

    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != 19:  # ENODEV: it went meanwhile
                    raise HostError(f"cannot delete {ifname}: {exc}") from None
