"""Host drift outside gatewayctl's table: base chains of other tables (any family, any hook) and
iptables-legacy chains that can change the fate or destination of partner packets, parts of the
ruleset that could not be read, and WireGuard devices carrying the gateway's keys under another name.

Partner packets are those partners send: they enter on the partner interface with a source in a
peer's allowed IPs. A statement is reported unless the matches in front of it exclude every such
packet (`iifname` of another device, a source outside every partner network); `accept` is never
reported on its own, since it does not skip gatewayctl's chains. Whether a chain existed at the last
apply makes no difference: a bypass that was there before is still a bypass.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence

from gatewayctl.host.base import LiveState
from gatewayctl.host.bypassstate import BaseChain, Effect, WgSeen
from gatewayctl.plan.spec import GatewaySpec

IP_FAMILIES = ("ip", "ip6", "inet")
WHEN = {"prerouting": "before routing, so before gatewayctl's forward and input filters",
        "postrouting": "after gatewayctl's forward filter", "output": "packets the gateway itself sends",
        "ingress": "before every IP hook"}
SHOWN = 6  # statements listed per chain; the rest are counted
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Finding = tuple[str, str, str]  # kind, subject, detail


def host_findings(live: LiveState, specs: Sequence[GatewaySpec]) -> list[Finding]:
    """(kind, subject, detail) of every bypass on the host, judged against the interfaces, keys and
    partner networks of `specs` (the last applied state and the profiles)."""
    names = {s.ifname for s in specs} | {d.link for d in live.foreign.wg_devices if d.link and _carries(d, specs)}
    sources = [ipaddress.ip_network(a, strict=False) for s in specs for p in s.peers.values() for a in p.allowed_ips]
    ours = {c.hook: c.priority for c in (live.nft.chains.values() if live.nft else ()) if c.hook and c.priority is not None}
    found = [f for f in (_renamed(d, specs) for d in live.foreign.wg_devices) if f is not None]
    found += [("foreign-ruleset-unreadable", "host", text) for text in live.foreign.unreadable]
    for chain in live.foreign.chains:
        effects = [e for e in chain.effects if _reaches(e, names, sources)]
        if effects:
            found.append(("foreign-base-chain", _subject(chain), _detail(chain, effects, names, ours)))
    return found


def _carries(device: WgSeen, specs: Sequence[GatewaySpec]) -> bool:
    return any(device.public_key == s.public_key or device.peer_keys & set(s.peers) for s in specs)


def _renamed(device: WgSeen, specs: Sequence[GatewaySpec]) -> Finding | None:
    configured = specs[0].ifname
    where = f"'{device.link}'" if device.link else "a device whose link was not found"
    socket = f" (wireguard-go socket {device.socket}.sock)" if device.socket else " (kernel)"
    if device.error:
        return ("wireguard-device-unreadable", f"interface {device.link or device.socket}",
                f"a WireGuard device {where}{socket} could not be read, so it may carry the gateway's keys: {device.error}")
    if not _carries(device, specs):
        return None
    keys = {k for s in specs for k in s.peers}
    what = []
    if any(device.public_key == s.public_key for s in specs):
        what.append("the gateway's public key")
    if device.peer_keys & keys:
        what.append(f"{len(device.peer_keys & keys)} of its {len(keys)} peers")
    return ("interface-renamed", f"interface {configured}",
            f"WireGuard device {where}{socket} carries {' and '.join(what)}; the profiles call the interface "
            f"'{configured}', and gatewayctl's rules that match the interface by name do not see its packets")


def _reaches(effect: Effect, names: set[str], sources: list[Network]) -> bool:
    """Whether some partner packet can pass the matches in front of the statement."""
    if not all(any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in m) for m in effect.iifnames):
        return False
    return not sources or all(any(_overlaps(net, sources) for net in m) for m in effect.saddrs)


def _overlaps(text: str, sources: Iterable[Network]) -> bool:
    net = ipaddress.ip_network(text, strict=False)
    return any(net.version == s.version and net.overlaps(s) for s in sources)


def _subject(chain: BaseChain) -> str:
    device = f" device {', '.join(chain.devices)}" if chain.devices else ""
    return f"{chain} (hook {chain.hook}{device}, priority {chain.priority}, policy {chain.policy})"


def _detail(chain: BaseChain, effects: list[Effect], names: set[str], ours: dict[str, int]) -> str:
    texts = list(dict.fromkeys(str(e) for e in effects))
    shown = "; ".join(texts[:SHOWN]) + (f"; and {len(texts) - SHOWN} more" if len(texts) > SHOWN else "")
    return f"{_where(chain, names, ours)}; it does: {shown}"


def _where(chain: BaseChain, names: set[str], ours: dict[str, int]) -> str:
    """Which partner packets the chain sees, and when, against gatewayctl's own chains."""
    if chain.hook in ("ingress", "egress"):
        return _on_device(chain, names)
    if chain.family == "bridge":
        return f"bridge {chain.hook}: frames crossing a bridge (partner traffic crosses one where the services side is bridged)"
    if chain.family == "arp":
        return f"arp {chain.hook}: address resolution, which decides which hosts the gateway reaches"
    if chain.hook in ours and chain.family in IP_FAMILIES:
        order = "before" if chain.priority < ours[chain.hook] else "after"
        return (f"{chain.family} {chain.hook}, {order} gatewayctl's {chain.hook} chain "
                f"(priority {chain.priority} against {ours[chain.hook]})")
    return f"{chain.family} {chain.hook} ({WHEN.get(chain.hook, 'gatewayctl has no chain of its own on this hook')})"


def _on_device(chain: BaseChain, names: set[str]) -> str:
    hook = f"{chain.family} {chain.hook}"
    if not chain.devices:
        return f"{hook} on a device nft did not name: it may carry partner traffic"
    partner = [d for d in chain.devices if d in names]
    if partner:
        return f"{hook} on {', '.join(partner)}, the partner interface: every partner packet, before any IP hook"
    where = ("the underlay, where partners' encrypted packets arrive" if chain.hook == "ingress" else
             "on the services side, where partner packets leave after gatewayctl's filter")
    return f"{hook} on {', '.join(chain.devices)}, not the partner interface: gatewayctl cannot tell whether it is {where}"
