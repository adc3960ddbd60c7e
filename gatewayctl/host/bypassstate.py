"""Typed state of everything outside gatewayctl's table that can change what happens to partner
packets, and the pure parser of its raw snapshot (`nft -j` listings of the other tables, the text
listing of their netdev chains, iptables-legacy-save output, the other WireGuard devices).

A base chain is reduced to its *effects*: the statements reachable from it (through jump, goto and
verdict maps) that can change a packet's fate or destination, each with the matches in front of it
that limit which packets it applies to (input interface, source address). `accept` is not an
effect: in nftables an accept ends only the current base chain, and the packet still traverses
every later base chain, gatewayctl's included (nft(8), "Overall evaluation of the ruleset").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gatewayctl.host.nftstate import value_text

# Expressions that make a rule apply to some packets only; a rule without any is unconditional.
_FILTERS = {"match", "limit", "quota", "ct count", "xt", "vmap", "meter", "synproxy", "last"}
_TERMINAL = {"accept", "drop", "reject", "return", "goto"}
_MARKS = {("meta", "mark"), ("ct", "mark")}
_ADDRESS_FIELDS = {"saddr", "daddr", "sport", "dport"}
# iptables-nft targets that only log or classify; any other target is reported.
HARMLESS_TARGETS = {"LOG", "NFLOG", "ULOG", "AUDIT", "TRACE", "CLASSIFY", "TCPMSS", "ACCEPT", "RETURN", "CHECKSUM"}


@dataclass(frozen=True)
class Effect:
    """A statement that can change fate or destination, and which packets reach it: each entry of
    `iifnames` (names or `*` patterns) and of `saddrs` (networks) is a match the packet must pass."""

    what: str
    path: tuple[str, ...]
    iifnames: tuple[frozenset[str], ...] = ()
    saddrs: tuple[frozenset[str], ...] = ()

    def __str__(self) -> str:
        return self.what + (f" (via {' > '.join(self.path[1:])})" if len(self.path) > 1 else "")


@dataclass(frozen=True)
class BaseChain:
    """A base chain of another table (nftables) or a built-in chain of iptables-legacy."""

    source: str
    family: str
    table: str
    name: str
    type: str | None
    hook: str
    priority: int
    policy: str | None
    devices: tuple[str, ...]
    effects: tuple[Effect, ...]

    def __str__(self) -> str:
        prefix = "" if self.source == "nftables" else f"{self.source} "
        return f"{prefix}{self.family} {self.table} {self.name}"


@dataclass(frozen=True)
class WgSeen:
    """A WireGuard device in this namespace other than the configured one (or the configured socket
    served by a link of another name): public keys only."""

    link: str | None
    socket: str | None
    backend: str
    public_key: str | None
    peer_keys: frozenset[str]
    error: str | None


@dataclass(frozen=True)
class ForeignState:
    chains: tuple[BaseChain, ...] = ()
    unreadable: tuple[str, ...] = ()
    wg_devices: tuple[WgSeen, ...] = ()


def parse_foreign(raw: dict[str, Any] | None, own_table: str) -> ForeignState:
    """Pure: the `foreign` part of a raw snapshot -> typed state (empty when the snapshot has none)."""
    from gatewayctl.host.iptstate import parse_legacy

    if not raw:
        return ForeignState()
    chains = list(parse_base_chains(raw.get("nft") or {}, own_table, raw.get("nft_devices") or {}))
    unreadable = [str(e) for e in raw.get("errors", [])]
    for family, legacy in sorted((raw.get("legacy") or {}).items()):
        if legacy.get("save") is not None:
            chains += parse_legacy(legacy["save"], family)
        elif legacy.get("tables"):
            unreadable.append(f"iptables-legacy ({family}) has tables {', '.join(legacy['tables'])} that could not be "
                              f"read: {legacy.get('error') or 'no reason given'}")
    devices = tuple(WgSeen(d.get("link"), d.get("socket"), d["backend"], d.get("public_key"),
                           frozenset(d.get("peer_keys", [])), d.get("error")) for d in raw.get("wg_devices", []))
    return ForeignState(tuple(sorted(chains, key=str)), tuple(unreadable), devices)


def parse_base_chains(listing: dict[str, Any], own_table: str, device_text: dict[str, str]) -> Iterator[BaseChain]:
    """Every base chain of every table but `inet own_table` in a `nft -j list ...` listing, with its effects.

    `device_text` holds the text listing of tables whose chains sit on a device ("netdev NAME"):
    nft 1.0.6 leaves the device out of its JSON."""
    rules: dict[tuple[str, str, str], list[list[Any]]] = {}
    maps: dict[tuple[str, str, str], list[Any]] = {}
    bases = []
    for item in listing.get("nftables", []):
        if "rule" in item:
            r = item["rule"]
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r["expr"])
        elif "map" in item:
            m = item["map"]
            maps[(m["family"], m["table"], m["name"])] = m.get("elem", [])
        elif "chain" in item and "hook" in item["chain"]:
            c = item["chain"]
            if not (c["family"] == "inet" and c["table"] in (own_table, f"{own_table}_guard")):  # the guard: guard-left
                bases.append(c)
    for c in bases:
        walker = _Walker(c["family"], c["table"], rules, maps)
        effects, closed = walker.chain(c["name"], (), (), (c["name"],))
        if c.get("policy") == "drop" and not closed:
            effects.append(Effect("policy drop", (c["name"],)))
        if _pair_silence(c, own_table, effects):
            continue
        yield BaseChain("nftables", c["family"], c["table"], c["name"], c.get("type"), c["hook"], int(c.get("prio", 0)),
                        c.get("policy"), _devices(c, device_text), tuple(effects))


def _pair_silence(chain: dict[str, Any], own_table: str, effects: list[Effect]) -> bool:
    """A pair's table inet OWN_ha (templates/ha/gatewayctl-ha.nft.j2): an output chain that only drops
    (what the node itself sends from the WireGuard port). It cannot widen access; anything else in it is reported."""
    return (chain["family"] == "inet" and chain["table"] == f"{own_table}_ha" and chain["hook"] == "output"
            and chain.get("policy") == "accept" and all(e.what == "drop" for e in effects))


def _devices(chain: dict[str, Any], device_text: dict[str, str]) -> tuple[str, ...]:
    dev = chain.get("dev")
    if dev:
        return tuple(dev) if isinstance(dev, list) else (str(dev),)
    text = device_text.get(f"{chain['family']} {chain['table']}", "")
    block = re.search(rf"\n\tchain {re.escape(chain['name'])} {{\n\t\ttype [^\n]*? hook \w+ (device \"([^\"]+)\"|"
                      rf"devices = {{ ([^}}]*) }})", "\n" + text)
    if not block:
        return ()
    if block.group(2):
        return (block.group(2),)
    return tuple(d.strip().strip('"') for d in block.group(3).split(","))


@dataclass
class _Walker:
    """Walks one table's chains from a base chain, collecting effects with their conditions."""

    family: str
    table: str
    rules: dict[tuple[str, str, str], list[list[Any]]]
    maps: dict[tuple[str, str, str], list[Any]]

    def chain(self, name: str, ifs: tuple[frozenset[str], ...], srcs: tuple[frozenset[str], ...],
              path: tuple[str, ...]) -> tuple[list[Effect], bool]:
        """(effects, whether an unconditional verdict ends the chain before its end)."""
        found: list[Effect] = []
        for exprs in self.rules.get((self.family, self.table, name), []):
            r_ifs, r_srcs = ifs + _iifnames(exprs), srcs + _saddrs(exprs)
            for expr in exprs:
                found += self._statement(expr, r_ifs, r_srcs, path)
            if not any(k in _FILTERS for e in exprs for k in e) and any(k in _TERMINAL for e in exprs for k in e):
                return found, True
        return found, False

    def _statement(self, expr: dict[str, Any], ifs: tuple[frozenset[str], ...], srcs: tuple[frozenset[str], ...],
                   path: tuple[str, ...]) -> list[Effect]:
        ((key, value),) = expr.items()
        if key in ("jump", "goto"):
            return self._call(value["target"], ifs, srcs, path)
        if key == "vmap":
            return self._vmap(value, ifs, srcs, path)
        what = describe(key, value)
        return [Effect(what, path, ifs, srcs)] if what else []

    def _call(self, target: str, ifs: tuple[frozenset[str], ...], srcs: tuple[frozenset[str], ...],
              path: tuple[str, ...]) -> list[Effect]:
        if target in path or len(path) > 16:  # nft refuses loops; this only guards a malformed listing
            return []
        return self.chain(target, ifs, srcs, (*path, target))[0]

    def _vmap(self, vmap: dict[str, Any], ifs: tuple[frozenset[str], ...], srcs: tuple[frozenset[str], ...],
              path: tuple[str, ...]) -> list[Effect]:
        data = vmap["data"]
        entries = data["set"] if isinstance(data, dict) and "set" in data else \
            self.maps.get((self.family, self.table, str(data).lstrip("@")), [])
        keyed_on_iif = _meta_key(vmap.get("key")) in ("iifname", "iif")
        found: list[Effect] = []
        for key, verdict in entries:
            entry_ifs = (*ifs, frozenset({value_text(key)})) if keyed_on_iif and isinstance(key, str) else ifs
            found += self._statement(verdict, entry_ifs, srcs, path)
        return found


def describe(key: str, value: Any) -> str | None:
    """nft's spelling of a statement that can change fate or destination; None for any other."""
    simple = {"drop": "drop", "reject": "reject", "notrack": "notrack", "masquerade": "masquerade",
              "synproxy": "synproxy"}
    if key in simple:
        return simple[key]
    if key == "queue":
        return "queue to userspace" + (f" (num {value_text(value['num'])})" if value and "num" in value else "")
    if key in ("dnat", "snat", "tproxy", "redirect"):
        target = _target(value)
        return f"{key} to {target}" if target else key
    if key == "fwd":
        via = f" ({value['family']} {value_text(value['addr'])})" if "addr" in value else ""
        return f"fwd to device {value_text(value['dev'])}{via}"
    if key == "dup":
        return f"dup to {value_text(value['addr'])}" + (f" device {value_text(value['dev'])}" if "dev" in value else "")
    if key == "ct helper":
        return f"ct helper set {value_text(value)} (its related flows pass 'ct state related' rules)"
    if key == "flow":
        return f"flow add {value_text(value.get('flowtable'))} (offloaded flows skip the forward hook)"
    if key == "mangle":
        return _mangle(value)
    if key == "xt" and value and value.get("type") == "target" and value.get("name") not in HARMLESS_TARGETS:
        return f"iptables-nft target {value.get('name')} (arguments not readable through nft)"
    return None


def _target(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    addr = value_text(value["addr"]) if "addr" in value else ""
    port = f":{value_text(value['port'])}" if "port" in value else ""
    return f"{addr}{port}"


def _mangle(value: dict[str, Any]) -> str | None:
    target = value.get("key", {})
    ((kind, inner),) = target.items() if isinstance(target, dict) and len(target) == 1 else (("", {}),)
    if (kind, inner.get("key")) in _MARKS:
        return f"{kind} mark set {value_text(value.get('value'))}"
    if kind == "payload" and inner.get("field") in _ADDRESS_FIELDS:
        return f"{inner.get('protocol')} {inner['field']} set {value_text(value.get('value'))} (rewrites the packet)"
    return None


def _meta_key(expr: Any) -> str | None:
    return expr["meta"].get("key") if isinstance(expr, dict) and isinstance(expr.get("meta"), dict) else None


def _positive(exprs: list[Any], wanted: Any) -> Iterator[Any]:
    """The right-hand sides of `==`/`in` matches whose left side satisfies `wanted`."""
    for expr in exprs:
        match = expr.get("match")
        if match and match.get("op") in ("==", "in") and wanted(match.get("left")):
            yield match.get("right")


def _iifnames(exprs: list[Any]) -> tuple[frozenset[str], ...]:
    found = []
    for right in _positive(exprs, lambda left: _meta_key(left) in ("iifname", "iif")):
        items = right["set"] if isinstance(right, dict) and "set" in right else [right]
        if all(isinstance(i, str) and not i.startswith("@") for i in items):
            found.append(frozenset(items))
    return tuple(found)


def _saddrs(exprs: list[Any]) -> tuple[frozenset[str], ...]:
    found = []
    for right in _positive(exprs, _is_saddr):
        items = right["set"] if isinstance(right, dict) and "set" in right else [right]
        nets = [_networks(i) for i in items]
        if all(n is not None for n in nets):
            found.append(frozenset(x for n in nets if n for x in n))
    return tuple(found)


def _is_saddr(left: Any) -> bool:
    payload = left.get("payload") if isinstance(left, dict) else None
    return isinstance(payload, dict) and payload.get("protocol") in ("ip", "ip6") and payload.get("field") == "saddr"


def _networks(item: Any) -> list[str] | None:
    """The networks an address, prefix or range covers; None when it is not a literal (a named set)."""
    try:
        if isinstance(item, dict) and "range" in item:
            first, last = (ipaddress.ip_address(value_text(v)) for v in item["range"])
            return [str(n) for n in ipaddress.summarize_address_range(first, last)]
        return [str(ipaddress.ip_network(value_text(item), strict=False))]
    except ValueError:
        return None
