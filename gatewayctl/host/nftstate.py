"""Typed nftables state and the pure parser from libnftables' JSON listing.

Equality ignores what moves on a healthy gateway: counters, element timers, rule handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NftSet:
    """A set or map: its declaration and its elements in nft's spelling (`key` or `key : verdict`)."""

    name: str
    kind: str
    type: tuple[str, ...]
    flags: tuple[str, ...]
    elements: frozenset[str]
    counters: dict[str, tuple[int, int]] = field(default_factory=dict, compare=False)
    expires: dict[str, int] = field(default_factory=dict, compare=False)
    comments: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class NftChain:
    """A chain: its hook (base chains) and its rules in a canonical spelling."""

    name: str
    hook: str | None
    priority: int | None
    policy: str | None
    rules: tuple[str, ...]
    counters: tuple[tuple[int, int], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class NftTableState:
    name: str
    sets: dict[str, NftSet]
    chains: dict[str, NftChain]


@dataclass(frozen=True)
class ForeignChain:
    """A base chain in another table on a hook that partner traffic passes."""

    family: str
    table: str
    name: str
    hook: str
    priority: int
    policy: str | None

    def __str__(self) -> str:
        return f"{self.family} {self.table} {self.name} (hook {self.hook}, priority {self.priority}, policy {self.policy})"


PARTNER_HOOKS = ("prerouting", "input", "forward")


def value_text(value: Any) -> str:
    """nft's text spelling of a JSON value: addresses, prefixes, ranges, concatenations, verdicts."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list):
        return " . ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        ((key, inner),) = value.items()
        if key == "elem":
            return value_text(inner["val"])
        if key == "prefix":
            return f"{inner['addr']}/{inner['len']}"
        if key == "range":
            return f"{value_text(inner[0])}-{value_text(inner[1])}"
        if key == "concat":
            return " . ".join(value_text(v) for v in inner)
        if key in ("goto", "jump"):
            return f"{key} {inner['target']}"
        if inner is None:
            return str(key)
    return json.dumps(value, sort_keys=True)


def _element(item: Any, kind: str) -> tuple[str, dict[str, Any]]:
    """(canonical text, element attributes) of one element of a set or map."""
    if kind == "map":
        key, verdict = item
        text, attrs = _element(key, "set")
        return f"{text} : {value_text(verdict)}", attrs
    attrs = item["elem"] if isinstance(item, dict) and "elem" in item else {}
    return value_text(item), attrs


def _set(obj: dict[str, Any], kind: str) -> NftSet:
    elements, counters, expires, comments = set(), {}, {}, {}
    for item in obj.get("elem", []):
        text, attrs = _element(item, kind)
        elements.add(text)
        if "comment" in attrs:
            comments[text] = attrs["comment"]
        if "counter" in attrs:
            counters[text] = (attrs["counter"]["packets"], attrs["counter"]["bytes"])
        if "expires" in attrs:
            expires[text] = attrs["expires"]
    kind_type = obj["type"] if isinstance(obj["type"], list) else [obj["type"]]
    if kind == "map":
        kind_type = [*kind_type, ":", obj["map"]]
    return NftSet(obj["name"], kind, tuple(kind_type), tuple(obj.get("flags", [])), frozenset(elements), counters, expires,
                  comments)


def _rule(exprs: list[Any]) -> tuple[str, tuple[int, int] | None]:
    counter = None
    canonical = []
    for expr in exprs:
        if "counter" in expr and isinstance(expr["counter"], dict) and "packets" in expr["counter"]:
            counter = (expr["counter"]["packets"], expr["counter"]["bytes"])
            expr = {"counter": None}
        canonical.append(expr)
    return json.dumps(canonical, sort_keys=True, separators=(",", ":")), counter


def parse_table(listing: dict[str, Any], name: str) -> NftTableState | None:
    """Parse `nft -j list table inet NAME`; None when the listing holds no such table."""
    items = listing.get("nftables", [])
    if not any("table" in i and i["table"]["name"] == name for i in items):
        return None
    sets: dict[str, NftSet] = {}
    chains: dict[str, dict[str, Any]] = {}
    for item in items:
        if "set" in item:
            sets[item["set"]["name"]] = _set(item["set"], "set")
        elif "map" in item:
            sets[item["map"]["name"]] = _set(item["map"], "map")
        elif "chain" in item:
            chains[item["chain"]["name"]] = {"meta": item["chain"], "rules": [], "counters": []}
        elif "rule" in item:
            text, counter = _rule(item["rule"]["expr"])
            chains[item["rule"]["chain"]]["rules"].append(text)
            chains[item["rule"]["chain"]]["counters"].append(counter or (0, 0))
    return NftTableState(name, sets, {k: _chain(v) for k, v in chains.items()})


def _chain(raw: dict[str, Any]) -> NftChain:
    meta = raw["meta"]
    return NftChain(meta["name"], meta.get("hook"), meta.get("prio"), meta.get("policy"), tuple(raw["rules"]),
                    tuple(raw["counters"]))


def parse_foreign_chains(listing: dict[str, Any], own_table: str) -> tuple[ForeignChain, ...]:
    """Base chains of other tables on the hooks partner traffic passes (from `nft -j list chains`)."""
    found = []
    for item in listing.get("nftables", []):
        chain = item.get("chain")
        if not chain or "hook" not in chain or chain.get("hook") not in PARTNER_HOOKS:
            continue
        if chain["family"] == "inet" and chain["table"] == own_table:
            continue
        if chain["family"] not in ("inet", "ip", "ip6"):
            continue
        found.append(ForeignChain(chain["family"], chain["table"], chain["name"], chain["hook"], int(chain.get("prio", 0)),
                                  chain.get("policy")))
    return tuple(sorted(found, key=str))
