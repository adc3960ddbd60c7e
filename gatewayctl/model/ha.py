"""gateway.yaml's `ha:` block: the gateway as a pair of nodes that share one WireGuard identity and ruleset.

The schema here checks each value; `ha_problems` checks the block against itself and against the
rest of gateway.yaml (the partners' endpoint is the floating address, the nodes are distinct), with
the file and line of the value at fault.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool, WithJsonSchema

from gatewayctl.model.types import Identifier, InterfaceAddress, InterfaceName, IPInterface, Network, Port, Strict

if TYPE_CHECKING:
    from gatewayctl.errors import ProfileError
    from gatewayctl.loader.profiles import Loaded
    from gatewayctl.model.gateway import GatewayFile

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: Any) -> IPAddress:
    if not isinstance(value, str) or "/" in value or not 2 <= len(value) <= 45 or value.strip("0123456789abcdefABCDEF:."):
        raise ValueError("must be one IPv4 or IPv6 address without a prefix length, such as 192.0.2.10")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address") from None


Address = Annotated[IPAddress, BeforeValidator(_address), WithJsonSchema({"type": "string", "format": "ip-address"}),
                    Field(description="one IPv4 or IPv6 address, no prefix length")]


class HaNode(Strict):
    """One node of the pair."""

    name: Identifier = Field(description="the node's name (a node is told its name: see docs/ha.md)")
    underlay_address: InterfaceAddress = Field(
        description="the node's own address on the underlay link, with prefix length, e.g. 192.0.2.21/24")
    priority: int = Field(ge=1, le=254, strict=True,
                          description="VRRP priority (1-254); the higher one is the active node while both are healthy")
    sync_address: Address = Field(description="the node's address on the synchronisation link (conntrackd)")


class HaRoute(Strict):
    """A route the active node installs with the floating address as its source."""

    to: Network = Field(description="destination network, e.g. 0.0.0.0/0 or the partners' underlay network")
    via: Address | None = Field(default=None, description="next hop (none: on the underlay link)")
    metric: int = Field(default=50, ge=0, le=65535, strict=True,
                        description="route metric; lower than the node's own route to the same network")


class HaAddress(Strict):
    """An address that moves with the floating address (the active node holds it)."""

    address: InterfaceAddress = Field(description="the address with prefix length, e.g. 10.255.255.1/24")
    interface: InterfaceName = Field(description="the interface it goes on (same name on both nodes)")


class HaSettings(Strict):
    """A high-availability pair: VRRP (keepalived) moves the floating address, conntrackd copies the
    connection tracking state, and both nodes carry the same WireGuard identity and ruleset."""

    nodes: list[HaNode] = Field(min_length=2, max_length=2, description="the two nodes of the pair")
    interface: InterfaceName = Field(description="the underlay interface (same name on both nodes) that carries "
                                                 "VRRP and the floating address")
    floating_address: InterfaceAddress = Field(
        description="the address partners connect to, with prefix length; wireguard.endpoint must name it")
    virtual_router_id: int = Field(ge=1, le=255, strict=True,
                                   description="VRRP virtual router id (1-255), unique on the underlay segment")
    advert_interval_ms: int = Field(default=1000, ge=100, le=40000, strict=True,
                                    description="VRRP advertisement interval in milliseconds (VRRPv3: 100-40000); "
                                                "the standby takes over after about 3 intervals of silence")
    preempt: StrictBool = Field(default=True, description="the node of higher priority takes the floating address "
                                                          "back when it is healthy again (failback)")
    sync_interface: InterfaceName = Field(description="the link conntrackd synchronises over (a dedicated link)")
    sync_port: Port = Field(default=3780, description="UDP port conntrackd uses on the synchronisation link")
    check_interval_s: int = Field(default=1, ge=1, le=60, strict=True,
                                  description="how often each node checks its WireGuard interface and table")
    internal_addresses: list[HaAddress] = Field(
        default_factory=list, description="addresses that move with the floating address, of either family: the "
        "pair's next hop on the internal networks, so that replies to partners come back to the active node")
    source_routes: list[HaRoute] = Field(
        default_factory=list, description="routes with the floating address as source, installed on the active node, "
        "so that handshakes the gateway starts leave from the floating address")
    config_dir: str = Field(default="/etc/gatewayctl/ha", pattern=r"^/[A-Za-z0-9_./-]{0,200}$",
                            description="where the built ha/ folder is installed on each node (a node's files "
                                        "are in config_dir/NODE)")
    run_dir: str = Field(default="/var/lib/gatewayctl/ha", pattern=r"^/[A-Za-z0-9_./-]{0,200}$",
                         description="where each node keeps conntrackd's socket, lock and log and the notify "
                                     "script's log (in run_dir/NODE)")

    def node(self, name: str) -> HaNode | None:
        """The node called `name`, or None."""
        return next((n for n in self.nodes if n.name == name), None)

    def other(self, node: HaNode) -> HaNode:
        """The other node of the pair."""
        return next(n for n in self.nodes if n is not node)


def ha_problems(gateway: Loaded[GatewayFile]) -> list[ProfileError]:
    """Every problem of the `ha:` block (empty without one), each at its line of gateway.yaml."""
    ha = gateway.model.ha
    if ha is None:
        return []
    doc, found = gateway.doc, []
    for loc, message in _node_problems(ha) + _address_problems(ha) + _endpoint_problems(gateway.model, ha):
        found.append(doc.error(loc, message))
    return found


Problem = tuple[tuple[int | str, ...], str]


def _node_problems(ha: HaSettings) -> list[Problem]:
    found: list[Problem] = []
    for field, what in (("name", "names"), ("priority", "VRRP priorities"), ("underlay_address", "underlay addresses"),
                        ("sync_address", "sync addresses")):
        first, second = (getattr(n, field) for n in ha.nodes)
        if (first.ip if field == "underlay_address" else first) == (second.ip if field == "underlay_address" else second):
            found.append((("ha", "nodes", 1, field), f"ha.nodes[1].{field}: the two nodes need distinct {what}; "
                                                     f"both have {str(second)!r}"))
    return found


def _address_problems(ha: HaSettings) -> list[Problem]:
    """Addresses a pair can use: one family, one underlay network, no special-purpose address."""
    found: list[Problem] = []
    vip = ha.floating_address
    checks: list[tuple[tuple[int | str, ...], str, IPInterface | IPAddress]] = [
        (("ha", "floating_address"), "ha.floating_address", vip)]
    for index, node in enumerate(ha.nodes):
        checks.append((("ha", "nodes", index, "underlay_address"), f"ha.nodes[{index}].underlay_address", node.underlay_address))
        checks.append((("ha", "nodes", index, "sync_address"), f"ha.nodes[{index}].sync_address", node.sync_address))
    for loc, where, value in checks:
        ip = value.ip if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface) else value
        if ip.version != vip.version:
            found.append((loc, f"{where}: must be of the floating address's family (IPv{vip.version}); found {str(value)!r}"))
        elif ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
            found.append((loc, f"{where}: must be a unicast address a host can own (not loopback, multicast, "
                               f"link-local or unspecified); found {str(value)!r}"))
    for index, node in enumerate(ha.nodes):
        loc = ("ha", "nodes", index, "underlay_address")
        if node.underlay_address.ip == vip.ip:
            found.append((loc, f"ha.nodes[{index}].underlay_address: must differ from the floating address; found "
                               f"{str(node.underlay_address)!r}"))
        elif node.underlay_address.version == vip.version and vip.ip not in node.underlay_address.network:
            found.append((loc, f"ha.nodes[{index}].underlay_address: VRRP needs the node on the floating address's "
                               f"network {vip.network}; found {str(node.underlay_address)!r}"))
        if node.sync_address in (vip.ip, *(n.underlay_address.ip for n in ha.nodes)):
            found.append((("ha", "nodes", index, "sync_address"), f"ha.nodes[{index}].sync_address: must be an address "
                          f"of the synchronisation link, not the floating or an underlay address; found {str(node.sync_address)!r}"))
    if ha.sync_interface == ha.interface:
        found.append((("ha", "sync_interface"), "ha.sync_interface: conntrackd needs a link of its own (a failed "
                                                f"underlay link must not stop the sync); found {ha.sync_interface!r}"))
    return found


def _endpoint_problems(gateway: GatewayFile, ha: HaSettings) -> list[Problem]:
    """Partners reach the pair only through the floating address: the endpoint must be it, literally."""
    endpoint = gateway.wireguard.endpoint
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    found: list[Problem] = []
    try:
        named = ipaddress.ip_address(host)
    except ValueError:
        named = None
    if named != ha.floating_address.ip:
        found.append((("wireguard", "endpoint"), f"wireguard.endpoint: a pair's partners must connect to the floating "
                      f"address {ha.floating_address.ip} (written as that address: a name cannot be checked); found {endpoint!r}"))
    elif int(port) != gateway.wireguard.listen_port:
        found.append((("wireguard", "endpoint"), f"wireguard.endpoint: the port must be wireguard.listen_port "
                      f"({gateway.wireguard.listen_port}); found {endpoint!r}"))
    for name in (ha.interface, ha.sync_interface):
        if name == gateway.wireguard.interface:
            found.append((("ha", "interface" if name == ha.interface else "sync_interface"),
                          f"ha: the underlay and sync links must not be the WireGuard interface; found {name!r}"))
    return found
