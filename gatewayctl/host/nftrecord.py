"""gatewayctl's table as plain data with absolute element ends: what an apply leaves in the state
folder (nft-record.marshal) so that the next apply or plan need not list the table, when the kernel's
generation proves it unchanged (host/generation.py; docs/operations.md "Planning without listing").

Pure functions: encode a parsed table, decode it as of a later instant (an element whose end has
passed is gone, as the kernel drops it), and apply an element change to it. Counters are not kept
(nothing that plans reads them). Tested in tests/test_table_record.py, against real listings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gatewayctl.host.nftstate import NftChain, NftSet, NftTableState

VERSION = 1


def encode(state: NftTableState, listed_at: float) -> dict[str, Any]:
    """The table as marshal-able data; each timed element's end is listed_at + its time left."""
    sets = [[s.name, s.kind, list(s.type), list(s.flags), sorted(s.elements),
             {k: listed_at + left for k, left in s.expires.items()}, dict(s.comments)] for s in state.sets.values()]
    chains = [[c.name, c.hook, c.priority, c.policy, list(c.rules)] for c in state.chains.values()]
    return {"version": VERSION, "name": state.name, "sets": sets, "chains": chains}


def decode(data: Mapping[str, Any], at: float) -> NftTableState:
    """The table as a listing at `at` would show it: elements whose end is not after `at` are left out,
    the others carry their time left (whole seconds, down)."""
    if data.get("version") != VERSION:
        raise ValueError(f"table record of version {data.get('version')}, not {VERSION}")
    sets = {}
    for name, kind, types, flags, elements, ends, comments in data["sets"]:
        gone = {k for k, end in ends.items() if end <= at}
        left = {k: max(math.floor(end - at), 1) for k, end in ends.items() if k not in gone}
        kept = frozenset(elements) - gone
        sets[name] = NftSet(name, kind, tuple(types), tuple(flags), kept, {}, left,
                            {k: v for k, v in comments.items() if k in kept})
    chains = {name: NftChain(name, hook, priority, policy, tuple(rules)) for name, hook, priority, policy, rules in data["chains"]}
    return NftTableState(data["name"], sets, chains)


def changed(data: Mapping[str, Any], delete: Mapping[str, list[str]],
            add: Mapping[str, Sequence[tuple[str, float | None, str | None]]], at: float) -> dict[str, Any]:
    """The record after one transaction that deleted `delete` (set -> keys) and added `add` (set ->
    (key, end or None, comment or None)), without the elements that ended by `at` (the kernel has
    dropped them). A set named that the record lacks raises KeyError."""
    by_name = {row[0]: row for row in data["sets"]}
    for name in {*delete, *add}:
        if name not in by_name:
            raise KeyError(name)
    sets = []
    for row in data["sets"]:
        name, kind, types, flags, elements, ends, comments = row
        removed = set(delete.get(name, ())) | {k for k, end in ends.items() if end <= at}
        added = add.get(name, ())
        if not removed and not added:
            sets.append(row)
            continue
        keys = (set(elements) - removed) | {key for key, _, _ in added}
        ends = {k: v for k, v in ends.items() if k not in removed}
        comments = {k: v for k, v in comments.items() if k not in removed}
        for key, end, comment in added:
            ends.pop(key, None)
            comments.pop(key, None)
            if end is not None:
                ends[key] = end
            if comment is not None:
                comments[key] = comment
        sets.append([name, kind, types, flags, sorted(keys), ends, comments])
    return {**data, "sets": sets}
