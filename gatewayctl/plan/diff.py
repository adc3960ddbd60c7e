"""diff(desired, live) -> Plan: pure, explicit changes with reasons; no key is ever part of a message."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field

from gatewayctl.compile.ir import SEEN_SETS, SESSION_SETS
from gatewayctl.host.base import LiveState
from gatewayctl.host.nftstate import NftSet, NftTableState
from gatewayctl.host.wgtypes import PeerState
from gatewayctl.plan.spec import GatewaySpec, PeerSpec

# An element due to expire this close to now may already be gone from the kernel: not a difference.
EXPIRY_SLACK = dt.timedelta(seconds=120)


@dataclass(frozen=True)
class Change:
    """One difference. `kind` is a stable code (drift reports and tests key on it)."""

    sign: str
    area: str
    subject: str
    detail: str
    kind: str = ""

    def __str__(self) -> str:
        return f"{self.sign} {self.area} {self.subject}: {self.detail}" if self.detail else f"{self.sign} {self.area} {self.subject}"


@dataclass(frozen=True)
class Plan:
    """What apply would do, in the order of the areas, and what blocks it."""

    changes: tuple[Change, ...]
    blockers: tuple[str, ...]
    unchanged: tuple[str, ...]
    create_interface: bool = False
    mtu: int | None = None
    up: bool = False
    addresses_add: tuple[str, ...] = ()
    addresses_remove: tuple[str, ...] = ()
    routes_add: tuple[str, ...] = ()
    routes_remove: tuple[str, ...] = ()
    listen_port: int | None = None
    private_key: bool = False
    peers_upsert: tuple[str, ...] = ()
    peers_remove: tuple[str, ...] = ()
    nft_replace: bool = False
    nft_delete: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nft_add: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remove_guard: bool = False  # apply's guard table is there: the apply ends by deleting it

    @property
    def link_changes(self) -> bool:
        return bool(self.create_interface or self.mtu is not None or self.up or self.addresses_add or self.addresses_remove
                    or self.routes_add or self.routes_remove)

    @property
    def empty(self) -> bool:
        return not self.changes


def diff(desired: GatewaySpec, live: LiveState, now: dt.datetime, labels: dict[str, str] | None = None) -> Plan:
    """Compare desired and live state; `labels` names peers that are live but no longer desired."""
    labels = labels or {}
    changes: list[Change] = []
    unchanged: list[str] = []
    blockers = _blockers(desired, live)
    fields: dict[str, object] = {}
    _interface(desired, live, changes, fields)
    _peers(desired, live, labels, changes, unchanged, fields)
    if live.guard:
        fields["remove_guard"] = True
        changes.append(Change("-", "firewall", f"guard table inet {desired.table_name}_guard",
                              "left by an interrupted or refused apply; it drops all partner traffic", "guard-left"))
    firewall = _firewall(desired, live.nft, now)
    if firewall.changes:
        fields.update(nft_replace=firewall.replace, nft_delete=firewall.delete, nft_add=firewall.add)
    else:
        unchanged.append(f"firewall table inet {desired.table_name}: matches the profiles")
    return Plan(tuple(changes) + tuple(firewall.changes), tuple(blockers), tuple(unchanged), **fields)  # type: ignore[arg-type]


def _blockers(desired: GatewaySpec, live: LiveState) -> list[str]:
    found = []
    if desired.needs_forwarding4 and not live.forwarding4:
        found.append("IPv4 forwarding is off (net.ipv4.ip_forward = 0): partner traffic would not be forwarded; "
                     "enable it with `sysctl -w net.ipv4.ip_forward=1` and make it persistent")
    if desired.needs_forwarding6 and not live.forwarding6:
        found.append("IPv6 forwarding is off (net.ipv6.conf.all.forwarding = 0): enable it with "
                     "`sysctl -w net.ipv6.conf.all.forwarding=1`")
    if live.wg_error:
        found.append(live.wg_error)
    if live.link is None and live.wg is not None:
        meanwhile = ("its partner traffic is still filtered by address meanwhile" if live.nft is not None else
                     f"gatewayctl's table is missing too, so apply loads the guard table {desired.table_name}_guard, "
                     "which drops all partner traffic until an apply succeeds")
        found.append(f"the WireGuard device of {desired.ifname} answers on its socket but there is no interface "
                     f"{desired.ifname}: it was renamed or moved. Rename it back (ip link set NAME name {desired.ifname}); "
                     + meanwhile)
    return found


def _interface(desired: GatewaySpec, live: LiveState, changes: list[Change], fields: dict[str, object]) -> None:
    name = desired.ifname
    link = live.link
    if link is None:
        fields["create_interface"] = True
        changes.append(Change("+", "interface", name, f"create, port {desired.listen_port}, mtu {desired.mtu}, "
                              f"addresses {', '.join(sorted(desired.addresses))}", "interface-missing"))
        fields.update(mtu=desired.mtu, up=True, addresses_add=tuple(sorted(desired.addresses)),
                      routes_add=tuple(sorted(desired.routes)), listen_port=desired.listen_port, private_key=True)
        return
    if link.mtu != desired.mtu:
        fields["mtu"] = desired.mtu
        changes.append(Change("~", "interface", name, f"mtu {link.mtu} -> {desired.mtu}", "mtu-changed"))
    if not link.up:
        fields["up"] = True
        changes.append(Change("~", "interface", name, "down -> up", "interface-down"))
    live_addresses = {a for a in link.addresses if not a.startswith("fe80:")}
    _sets("address", name, desired.addresses, frozenset(live_addresses), changes, fields, "addresses")
    _sets("route", name, desired.routes, link.routes, changes, fields, "routes")
    wg = live.wg
    if wg is not None and wg.listen_port != desired.listen_port:
        fields["listen_port"] = desired.listen_port
        changes.append(Change("~", "interface", name, f"listen port {wg.listen_port} -> {desired.listen_port}",
                              "listen-port-changed"))
    if wg is not None and wg.public_key != desired.public_key:
        fields["private_key"] = True
        changes.append(Change("~", "interface", name, f"private key replaced from {desired.private_key_file} "
                              "(the live key does not match gateway.yaml's public key)", "key-mismatch"))


def _sets(area: str, name: str, want: frozenset[str], have: frozenset[str], changes: list[Change],
          fields: dict[str, object], key: str) -> None:
    add, remove = sorted(want - have, key=_net_key), sorted(have - want, key=_net_key)
    changes += [Change("+", area, value, f"on {name}", f"{area}-missing") for value in add]
    changes += [Change("-", area, value, f"on {name}", f"{area}-unexpected") for value in remove]
    fields[f"{key}_add"], fields[f"{key}_remove"] = tuple(add), tuple(remove)


def _net_key(text: str) -> tuple[int, int]:
    net = ipaddress.ip_interface(text)
    return net.version, int(net.ip)


def _peers(desired: GatewaySpec, live: LiveState, labels: dict[str, str], changes: list[Change],
           unchanged: list[str], fields: dict[str, object]) -> None:
    have = live.wg.peers if live.wg else {}
    upsert, remove = [], []
    for key, spec in sorted(desired.peers.items(), key=lambda kv: kv[1].label):
        current = have.get(key)
        if current is None:
            upsert.append(key)
            changes.append(Change("+", "peer", spec.label, f"allowed IPs {', '.join(sorted(spec.allowed_ips, key=_net_key))}",
                                  "peer-missing"))
            continue
        details = peer_differences(spec, current)
        if details:
            upsert.append(key)
            changes.append(Change("~", "peer", spec.label, "; ".join(d for d, _ in details), details[0][1]))
        else:
            unchanged.append(f"peer {spec.label}: unchanged, keeps its session")
    for key, current in sorted(have.items(), key=lambda kv: labels.get(kv[0], "~")):
        if key not in desired.peers:
            remove.append(key)
            label = labels.get(key, "not in the profiles")
            changes.append(Change("-", "peer", label, f"allowed IPs {', '.join(sorted(current.allowed_ips, key=_net_key))}",
                                  "peer-unexpected"))
    fields["peers_upsert"], fields["peers_remove"] = tuple(upsert), tuple(remove)


def peer_differences(spec: PeerSpec, current: PeerState) -> list[tuple[str, str]]:
    """What differs between a desired and a live peer: (words, kind) pairs, never a key."""
    details = []
    added = spec.allowed_ips - current.allowed_ips
    removed = current.allowed_ips - spec.allowed_ips
    if added or removed:
        def listed(ips: frozenset[str]) -> str:
            return ", ".join(sorted(ips, key=_net_key)) or "none"

        moves = ([f"adds {listed(added)}"] if added else []) + ([f"removes {listed(removed)}"] if removed else [])
        details.append((f"allowed IPs: the host has {listed(current.allowed_ips)}, the profiles say "
                        f"{listed(spec.allowed_ips)} (apply {' and '.join(moves)})", "allowed-ips-changed"))
    if spec.endpoint is not None and current.endpoint != spec.endpoint:
        details.append((f"endpoint {current.endpoint or 'none'} -> {spec.endpoint}", "endpoint-changed"))
    if current.keepalive != spec.keepalive:
        details.append((f"keepalive {current.keepalive or 'off'} -> {spec.keepalive or 'off'}", "keepalive-changed"))
    if current.psk_fingerprint != spec.psk:
        words = "set" if spec.psk and not current.psk_fingerprint else "removed" if not spec.psk else "replaced"
        details.append((f"preshared key {words}", "preshared-key-changed"))
    return details


@dataclass
class FirewallDelta:
    """How to bring the live table to the desired one: replace it, or change elements in place."""

    changes: list[Change] = field(default_factory=list)
    replace: bool = False
    delete: dict[str, tuple[str, ...]] = field(default_factory=dict)
    add: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _firewall(desired: GatewaySpec, live: NftTableState | None, now: dt.datetime) -> FirewallDelta:
    name = f"table inet {desired.table_name}"
    if live is None:
        count = sum(len(s.elements) for s in desired.table.sets.values())
        return FirewallDelta([Change("+", "firewall", name, f"create ({count} set and map elements)", "table-missing")],
                             replace=True)
    delta = FirewallDelta()
    owners = _owners(desired)
    for set_name, want in sorted(desired.table.sets.items()):
        have = live.sets.get(set_name)
        if have is None or (have.type, have.flags, have.kind) != (want.type, want.flags, want.kind):
            delta.changes.append(Change("~", "firewall", f"{set_name}", "declaration differs" if have else "missing",
                                        "table-changed"))
            delta.replace = True
            continue
        if set_name in SESSION_SETS or set_name in SEEN_SETS:
            continue  # filled at run time (sessions: drift checks them against the decision log; seen: the kernel)
        changes, delete, add = element_changes(want, have, owners, desired.element_ends, now)
        delta.changes += changes
        if delete:
            delta.delete[set_name] = delete
        if add:
            delta.add[set_name] = add
    for set_name in sorted(set(live.sets) - set(desired.table.sets)):
        delta.changes.append(Change("-", "firewall", set_name, "not defined by the profiles", "table-changed"))
        delta.replace = True
    for chain_name in sorted(set(desired.table.chains) | set(live.chains)):
        want_chain, have_chain = desired.table.chains.get(chain_name), live.chains.get(chain_name)
        if want_chain != have_chain:
            what = ("missing" if have_chain is None else "not defined by the profiles" if want_chain is None
                    else _rule_difference(want_chain.rules, have_chain.rules) if want_chain.rules != have_chain.rules
                    else "hook, priority or policy differs")
            delta.changes.append(Change("~", "firewall", f"chain {chain_name}", what, "rule-changed"))
            delta.replace = True
    return delta


def _rule_difference(want: tuple[str, ...], have: tuple[str, ...]) -> str:
    extra = len([r for r in have if r not in want])
    missing = len([r for r in want if r not in have])
    parts = ([f"{extra} rule(s) not in the profiles"] if extra else []) + ([f"{missing} rule(s) missing"] if missing else [])
    return ", ".join(parts) or "rules reordered"


def element_changes(want: NftSet, have: NftSet, owners: dict[str, str], ends: dict[str, dt.datetime],
                    now: dt.datetime) -> tuple[list[Change], tuple[str, ...], tuple[str, ...]]:
    """Element differences of one set: (changes, keys to delete, keys to add). An element whose
    kernel timer disagrees with its grant by more than the slack is replaced (deleted, then added)."""
    changes, delete, add = [], [], []
    for element in sorted(want.elements - have.elements):
        ending = ends.get(element)
        if ending is not None and ending - now <= EXPIRY_SLACK:
            continue  # leaving the kernel by itself right now
        add.append(element)
        changes.append(Change("+", "firewall", owners.get(_source(element), "unknown source"), describe(element),
                              "element-missing"))
    for element in sorted(have.elements - want.elements):
        delete.append(element)
        changes.append(Change("-", "firewall", owners.get(_source(element), "unknown source"), describe(element),
                              "element-unexpected"))
    for element in sorted(want.elements & have.elements):
        timer = _timer_difference(ends.get(element), have.expires.get(element), now)
        if timer:
            delete.append(element)
            add.append(element)
            changes.append(Change("~", "firewall", owners.get(_source(element), "unknown source"),
                                  f"{describe(element)}: {timer}", "timeout-changed"))
    return changes, tuple(delete), tuple(add)


def _timer_difference(ends: dt.datetime | None, expires: int | None, now: dt.datetime) -> str | None:
    if ends is None and expires is None:
        return None
    if ends is None:
        return "expires in the kernel, but the grant has no end"
    if expires is None:
        return f"never expires in the kernel, but the grant ends {ends:%Y-%m-%d %H:%M}Z"
    live_end = now + dt.timedelta(seconds=expires)
    if abs(live_end - ends) <= EXPIRY_SLACK:
        return None
    return f"kernel timer ends {live_end:%Y-%m-%d %H:%M}Z, the grant {ends:%Y-%m-%d %H:%M}Z"


def _owners(desired: GatewaySpec) -> dict[str, str]:
    """The partner of each element source, by the source as element keys spell it: a single address
    without its prefix length, a network with it. The spec's allowed IPs are ipaddress's spelling
    (str of a network), so the address is the text before `/32` or `/128`."""
    owners = {}
    for peer in desired.peers.values():
        for ip in peer.allowed_ips:
            address, _, length = ip.partition("/")
            single = not length or length == ("128" if ":" in address else "32")
            owners[address if single else ip] = peer.partner
    return owners


def _source(element: str) -> str:
    return element.split(" ", 1)[0]


def describe(element: str) -> str:
    """An element in words: `10.250.1.1 -> 10.1.0.5 tcp/443`, `deny path of 10.250.1.1`."""
    if " : " in element:
        key, verdict = element.split(" : ")
        return f"deny path of {key} ({verdict})"
    parts = element.split(" . ")
    if len(parts) == 4:
        return f"{parts[0]} -> {parts[1]} {parts[2]}/{parts[3]}"
    if len(parts) == 2:
        return f"{parts[0]} -> {parts[1]} icmp echo"
    return element
