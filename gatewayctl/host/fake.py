"""An in-memory host for unit tests, behind the same `Host` protocol as the real one.

It produces raw snapshots in the real formats (UAPI text, nft JSON listing), so the same parsers
run on both; tests/test_host_contract.py holds both to the same behaviour. Its nftables part
understands the rulesets gatewayctl renders (not nft's whole language).
"""

from __future__ import annotations

import copy
import ipaddress
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewayctl.host import generation
from gatewayctl.host.errors import HostError
from gatewayctl.host.nftstate import NftTableState, parse_table
from gatewayctl.host.uapi import ZERO_KEY, _hex
from gatewayctl.host.wgtypes import DeviceUpdate, public_of


@dataclass
class FakeDevice:
    private_key: bytes | None = None
    listen_port: int = 0
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class FakeHost:
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, FakeDevice] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    foreign_chains: list[dict[str, Any]] = field(default_factory=list)
    foreign_rules: list[dict[str, Any]] = field(default_factory=list)  # rules of those chains, in nft's JSON
    forwarding: dict[str, str] = field(default_factory=lambda: {"ipv4": "1", "ipv6": "1"})
    fail_next: dict[str, str] = field(default_factory=dict)
    # Seconds the fake's clock has moved since the ruleset was loaded: element timers count down by it
    # and elements whose timer ran out are gone, as in the kernel.
    elapsed_s: int = 0
    calls: list[str] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)  # tracked connections, as conntrack_list gives them

    def _maybe_fail(self, operation: str) -> None:
        self.calls.append(operation)
        message = self.fail_next.pop(operation, None)
        if message is not None:
            raise HostError(message)

    # the fake's nftables generation: one more for every write that changes a table, as in the kernel
    nft_generation: int = 1
    writes: int | None = 0  # as RealHost counts them: None once a write may have committed nothing

    @property
    def nft_writes(self) -> int | None:
        return self.writes

    def _committed(self) -> None:
        self.nft_generation += 1
        if self.writes is not None:
            self.writes += 1

    def generation(self) -> tuple[str, int, int] | None:
        return ("fake-boot", id(self), self.nft_generation)

    def snapshot(self, ifname: str, table: str, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        gen = self.generation()
        proven = generation.proves(known, gen, table)
        link = copy.deepcopy(self.links.get(ifname))
        device = self.devices.get(ifname)
        chains = {"nftables": [{"chain": c} for c in self.foreign_chains]}
        return {
            "ifname": ifname, "table": table, "link": link, "wg_backend": "userspace" if device else None,
            "wg_raw": _uapi_text(device) if device else None, "wg_error": None, "nft_listed_at": time.time(),
            "nft_table": _listing(self.tables[table], table, self.elapsed_s) if table in self.tables and not proven else None,
            "nft_generation": gen, "nft_proven": proven,
            "nft_chains": chains, "forwarding": dict(self.forwarding), "foreign": self._foreign(ifname),
            "guard": f"{table}_guard" in self.tables,
        }

    def _foreign(self, ifname: str) -> dict[str, Any]:
        """The `foreign` snapshot entry (see host/foreign.py): other tables' chains and rules, other devices."""
        listing = [{"chain": c} for c in self.foreign_chains] + [{"rule": r} for r in self.foreign_rules]
        devices = [{"link": name if name in self.links else None, "socket": name, "backend": "userspace",
                    "public_key": public_of(d.private_key) if d.private_key else None, "peer_keys": sorted(d.peers),
                    "error": None} for name, d in sorted(self.devices.items()) if name != ifname]
        return {"nft": {"nftables": copy.deepcopy(listing)}, "nft_devices": {}, "legacy": {}, "wg_devices": devices,
                "errors": []}

    def nft_canonical(self, text: str, table: str) -> NftTableState:
        state = parse_table(_listing(text, table), table)
        assert state is not None
        return state

    def nft_load(self, text: str) -> None:
        self._maybe_fail("nft_load")
        if text.strip() and all(line.startswith("flush set inet ") for line in text.strip().splitlines()):
            self.writes = None  # emptying sets that may be empty: maybe no transaction, as RealHost counts it
            return  # emptying a set the kernel fills (seen4/6): the fake keeps none
        match = re.search(r"^table inet (\S+) \{$", text, re.M)
        if not match:
            raise HostError("the kernel refused the ruleset (the live ruleset is as it was): no table")
        self.tables[match.group(1)] = text
        self._committed()

    def nft_list_text(self, table: str) -> str | None:
        """The table as nft lists it: each element's timer with the time it has left (`expires`)."""
        text = self.tables.get(table)
        if text is None:
            return None

        def left(match: re.Match[str]) -> str:
            return f"{match.group(0)} expires {max(_seconds(match.group(1)) - self.elapsed_s, 1)}s"

        return re.sub(r"(?m)(?<=^\t\t\t)(?:.*?) timeout ((?:\d+(?:ms|d|h|m|s))+)(?! expires)", left, text)

    def nft_elements(self, table: str, delete: dict[str, list[str]], add: dict[str, list[str]],
                     flush: tuple[str, ...] = ()) -> None:
        self._maybe_fail("nft_elements")  # flush: the sets the kernel fills (seen4/6); the fake keeps none
        if table not in self.tables:
            raise HostError(f"the kernel refused the element update: no table inet {table}")
        before = text = self.tables[table]
        for name in sorted(set(delete) | set(add)):
            text = _edit_elements(text, name, set(delete.get(name, [])), add.get(name, []))
        self.tables[table] = text
        if not any(delete.values()) and not any(add.values()):
            return
        certain = any(delete.values()) or any(" timeout " in t for texts in add.values() for t in texts)
        if certain or text != before:  # the kernel commits nothing when every element added is there already
            self.nft_generation += 1
        if not certain:
            self.writes = None
        elif self.writes is not None:
            self.writes += 1

    def nft_get_elements(self, table: str, name: str, keys: list[str]) -> frozenset[str]:
        state = parse_table(_listing(self.tables[table], table, self.elapsed_s), table) if table in self.tables else None
        if state is None or name not in state.sets:
            raise HostError(f"set {name} is missing from table inet {table}")
        return frozenset(keys) & state.sets[name].elements

    def wg_read(self, ifname: str, backend: str) -> str:
        device = self.devices.get(ifname)
        if device is None:
            raise HostError(f"no WireGuard userspace socket for {ifname}")
        return _uapi_text(device)

    def nft_delete(self, table: str) -> None:
        self._maybe_fail("nft_delete")
        if self.tables.pop(table, None) is not None:
            self._committed()

    def wg_create(self, ifname: str) -> str:
        self._maybe_fail("wg_create")
        self.links[ifname] = {"name": ifname, "index": len(self.links) + 10, "up": False, "mtu": 1420, "kind": "tun",
                              "addresses": [], "routes": []}
        self.devices[ifname] = FakeDevice()
        return "userspace"

    def wg_update(self, ifname: str, backend: str, update: DeviceUpdate) -> None:
        self._maybe_fail("wg_update")
        device = self.devices.get(ifname)
        if device is None:
            raise HostError(f"no WireGuard userspace socket for {ifname}")
        if update.private_key is not None:
            device.private_key = update.private_key
        if update.listen_port is not None:
            device.listen_port = update.listen_port
        for key in update.remove:
            device.peers.pop(key, None)
        for peer in update.upsert:
            old = device.peers.get(peer.public_key, {"handshake": 0, "rx": 0, "tx": 0})
            device.peers[peer.public_key] = {
                **old, "psk": peer.preshared_key, "endpoint": peer.endpoint, "keepalive": peer.keepalive,
                "allowed_ips": [str(ipaddress.ip_network(ip)) for ip in peer.allowed_ips],
            }

    def wg_destroy(self, ifname: str, backend: str) -> None:
        self._maybe_fail("wg_destroy")
        self.links.pop(ifname, None)
        self.devices.pop(ifname, None)

    def link_configure(self, ifname: str, mtu: int | None, up: bool | None) -> None:
        self._maybe_fail("link_configure")
        link = self._link(ifname)
        if mtu is not None:
            link["mtu"] = mtu
        if up is not None:
            link["up"] = up

    def address(self, ifname: str, cidr: str, add: bool) -> None:
        self._maybe_fail("address")
        _toggle(self._link(ifname)["addresses"], cidr, add)

    def route(self, ifname: str, dst: str, add: bool) -> None:
        self._maybe_fail("route")
        _toggle(self._link(ifname)["routes"], dst, add)

    def conntrack_list(self) -> list[dict[str, Any]]:
        self._maybe_fail("conntrack_list")
        return copy.deepcopy(self.flows)

    def conntrack_delete(self, flows: list[dict[str, Any]]) -> int:
        self._maybe_fail("conntrack_delete")
        before = len(self.flows)
        gone = [_flow_tuple(f) for f in flows]
        self.flows = [f for f in self.flows if _flow_tuple(f) not in gone]
        return before - len(self.flows)

    def _link(self, ifname: str) -> dict[str, Any]:
        if ifname not in self.links:
            raise HostError(f"interface {ifname} does not exist")
        return self.links[ifname]


def _flow_tuple(flow: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(flow.get(k) for k in ("family", "proto", "src", "dst", "sport", "dport", "icmp_id", "icmp_type"))


def _element_key(line: str) -> str:
    return re.sub(r'( timeout \S+)?( expires \S+)?( comment ".*")?,?$', "", line.strip())


def _edit_elements(text: str, name: str, delete: set[str], add: list[str]) -> str:
    """Rewrite one set or map block of a rendered ruleset with elements deleted and added."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if re.fullmatch(rf"\t(set|map) {re.escape(name)} \{{", ln)), None)
    if start is None:
        raise HostError(f"the kernel refused the element update: no set {name}")
    end = next(i for i in range(start, len(lines)) if lines[i] == "\t}")
    block = lines[start:end]
    head = [ln for ln in block if not ln.startswith("\t\t\t") and ln not in ("\t\telements = {", "\t\t}")]
    elements = [ln.strip().rstrip(",") for ln in block if ln.startswith("\t\t\t")]
    missing = delete - {_element_key(e) for e in elements}
    if missing:
        raise HostError(f"the kernel refused the element update: no such element {sorted(missing)[0]}")
    kept = [e for e in elements if _element_key(e) not in delete]
    for text in add:  # as the kernel: an element there already gets a new timer, if one is given, else stays
        at = next((i for i, e in enumerate(kept) if _element_key(e) == _element_key(text)), None)
        if at is None:
            kept.append(text)
        elif " timeout " in text:
            kept[at] = text
    body = ["\t\telements = {", *[f"\t\t\t{e}{',' if i < len(kept) - 1 else ''}" for i, e in enumerate(kept)], "\t\t}"]
    return "\n".join(lines[:start] + head + (body if kept else []) + lines[end:])


def _toggle(items: list[str], value: str, add: bool) -> None:
    if add and value not in items:
        items.append(value)
        items.sort()
    elif not add and value in items:
        items.remove(value)


def _uapi_text(device: FakeDevice) -> str:
    lines = [f"private_key={device.private_key.hex() if device.private_key else ZERO_KEY}",
             f"listen_port={device.listen_port}"]
    for key, peer in device.peers.items():
        lines += [f"public_key={_hex(key)}",
                  f"preshared_key={peer['psk'].hex() if peer['psk'] else ZERO_KEY}"]
        if peer["endpoint"]:
            lines.append(f"endpoint={peer['endpoint']}")
        lines += [f"last_handshake_time_sec={peer['handshake']}", f"rx_bytes={peer['rx']}", f"tx_bytes={peer['tx']}",
                  f"persistent_keepalive_interval={peer['keepalive']}"]
        lines += [f"allowed_ip={ip}" for ip in peer["allowed_ips"]]
    return "\n".join(lines)


_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{$")


def _listing(text: str, table: str, elapsed_s: int = 0) -> dict[str, Any]:
    """A `nft -j list table` listing for a ruleset in gatewayctl's rendered form."""
    body = text.split(f"table inet {table} {{\n", 2)[-1]
    items: list[dict[str, Any]] = [{"table": {"family": "inet", "name": table}}]
    kind, current = None, None
    for line in body.splitlines():
        match = _BLOCK.match(line)
        if match:
            kind, name = match.groups()
            current = {"family": "inet", "table": table, "name": name}
            items.append({kind: current})
            continue
        if current is None or not line.strip() or line.strip() in ("}", "elements = {"):
            continue
        _line(line.strip().rstrip(","), kind, current, items)
    for item in items:
        declared: dict[str, Any] | None = item.get("set") or item.get("map")
        if declared and "elem" in declared:
            declared["elem"] = [e for e in (_age(e, elapsed_s) for e in declared["elem"]) if e is not None]
    return {"nftables": items}


def _age(element: Any, elapsed_s: int) -> Any:
    attrs = element.get("elem") if isinstance(element, dict) else None
    if not attrs or "expires" not in attrs:
        return element
    left = attrs["expires"] - elapsed_s
    return None if left <= 0 else {"elem": {**attrs, "expires": left}}


def _line(line: str, kind: str | None, current: dict[str, Any], items: list[dict[str, Any]]) -> None:
    if kind in ("set", "map") and line.startswith("type "):
        parts = line[5:].split(" : ")
        current["type"] = [t.strip() for t in parts[0].split(" . ")]
        if kind == "map":
            current["map"] = parts[1]
    elif kind in ("set", "map") and line.startswith("flags "):
        current["flags"] = line[6:].split(",")
    elif kind in ("set", "map") and line == "counter":
        current["stmt"] = [{"counter": None}]
    elif kind in ("set", "map"):
        current.setdefault("elem", []).append(_elem(line, kind))
    elif line.startswith("type filter hook"):
        hook, prio, policy = re.match(r"type filter hook (\w+) priority (\w+); policy (\w+);", line).groups()  # type: ignore[union-attr]
        current.update(type="filter", hook=hook, prio=0 if prio == "filter" else int(prio), policy=policy)
    else:
        items.append({"rule": {"family": "inet", "table": current["table"], "chain": current["name"], "expr": [{"fake": line}]}})


def _elem(line: str, kind: str) -> Any:
    if kind == "map":
        key, verdict = line.split(" : ")
        action, target = verdict.split()
        return [_value(key), {action: {"target": target}}]
    key = re.sub(r' (timeout \S+ )?(expires \S+ )?comment ".*"$', "", line)
    key = re.sub(r" timeout \S+( expires \S+)?$", "", key)
    attrs: dict[str, Any] = {"val": _value(key), "counter": {"packets": 0, "bytes": 0}}
    timeout = re.search(r" timeout (\S+)", line)
    if timeout:  # the fake's clock stands still: time left is the whole timeout, or what `expires` says
        attrs["timeout"] = attrs["expires"] = _seconds(timeout.group(1))
        expires = re.search(r" expires (\S+)", line)
        if expires:
            attrs["expires"] = _seconds(expires.group(1))
    return {"elem": attrs}


def _seconds(duration: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration))


def _value(text: str) -> Any:
    parts = [_atom(p) for p in text.split(" . ")]
    return {"concat": parts} if len(parts) > 1 else parts[0]


def _atom(text: str) -> Any:
    if "/" in text:
        addr, length = text.split("/")
        return {"prefix": {"addr": addr, "len": int(length)}}
    if re.fullmatch(r"\d+-\d+", text):
        first, last = text.split("-")
        return {"range": [int(first), int(last)]}
    return int(text) if text.isdigit() else text

