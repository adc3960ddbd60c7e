"""The state folder's record of gatewayctl's table, so that apply and plan need not list it.

Listing the table is the largest fixed cost of planning a large estate (5,000 partners: 30,000
elements, 7.3 MB of JSON, 0.9 s in nft alone). After an apply whose result is known exactly, the
table is written here (nft-record.marshal, 0600) with the nftables generation it is in force at
(host/generation.py). The next apply, plan or revoke reads the generation first: while it is the
record's (and the wall clock keeps its offset to the monotonic clock), no transaction has touched any
table since, so the record, less the elements whose end has passed, is what a listing would show
(host/nftrecord.py); any other generation, a rebooted host or a namespace made again, and the table
is listed as before. drift always lists.

An apply's result is known exactly when its plan changed elements only (a table replaced is
listed again by the next apply), the table it planned against was read at a known generation,
and after the apply the generation is that one plus the transactions this apply committed, counted
only while each write certainly committed one (host/nft.py update_elements; a write that may have
committed nothing ends the count): nobody else committed in between. Tested in
tests/test_table_record.py and tests/test_hostile_record.py (real nftables and packets: the record
against a listing, changes by hand and by another process, clock steps, a namespace made again).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import marshal
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatewayctl.atomicfile import atomic_write
from gatewayctl.host import generation, nftrecord
from gatewayctl.host.base import LiveState

FILE = "nft-record.marshal"
_COMMENT = re.compile(r' comment "(.*)"$')


def load(root: Path) -> dict[str, Any] | None:
    """The record in state folder `root`, or None (none, unreadable, or not of this version)."""
    try:
        with open(root / FILE, "rb") as handle:
            data = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("generation"), list) and isinstance(data.get("record"), dict)
            and data["record"].get("version") == nftrecord.VERSION):
        return None
    return data


def save(root: Path, gen: tuple[str, int, int], table: str, record: dict[str, Any],
         foreign: dict[str, Any] | None = None) -> None:
    """Write the record, with the generation it holds at and the clock offset its ends were counted with;
    `foreign` (foreign_of): the other tables as they were read, which the same generation proves too."""
    data = marshal.dumps({"generation": list(gen), "table": table, "record": record, "clock": generation.clock_offset(),
                          **({"foreign": foreign} if foreign is not None else {})})
    atomic_write(root / FILE, data, 0o600)


def foreign_of(live_raw: Mapping[str, Any], table: str) -> dict[str, Any] | None:
    """What a snapshot read of the namespace's other nftables tables: their chains (`list chains`, less
    this table's), their listing and whether apply's guard table is there. Kept beside the record: the
    generation that proves the record proves them too (every table of the namespace is counted), and
    listing the tables costs nft 1.0.6 a listing of every set element (0.5 s at 5,000 partners).
    None when any part of it could not be read, or there is a guard table (an apply removes it)."""
    found = live_raw.get("foreign")
    chains = live_raw.get("nft_chains")
    if not isinstance(found, dict) or found.get("errors") or chains is None or live_raw.get("guard"):
        return None
    own = [item for item in chains.get("nftables", [])
           if not (isinstance(item.get("chain"), dict) and item["chain"].get("family") == "inet"
                   and item["chain"].get("table") == table)]
    return {"chains": {"nftables": own}, "nft": found.get("nft"), "nft_devices": found.get("nft_devices")}


def forget(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / FILE).unlink()


def continued(read_at: tuple[str, int, int] | None, now: tuple[str, int, int] | None, writes: int | None) -> bool:
    """Whether the generation `now` follows `read_at` (the one the table was read at) by exactly the
    `writes` transactions of this process: nobody else has committed since the table was read. False
    when `writes` is None (a write of this process may have committed nothing: the count proves nothing)."""
    return (read_at is not None and now is not None and writes is not None and now[:2] == read_at[:2]
            and now[2] == read_at[2] + writes)


def after_elements(live: LiveState, live_raw: Mapping[str, Any], delete: Mapping[str, tuple[str, ...]],
                   added: Mapping[str, list[tuple[str, str]]], ends: Mapping[str, dt.datetime],
                   planned_at: dt.datetime, started_at: float) -> dict[str, Any]:
    """The record of the table after an element change: the table as read (the record it came from,
    or the listing), less `delete`, plus `added` (set -> [(key, element text as sent)]). An added
    element's end is when its timeout, reckoned from `planned_at`, runs out counted from `started_at`
    (before it was sent: never later than the kernel's)."""
    assert live.nft is not None
    listed_at = float(live_raw["nft_listed_at"])
    base = live_raw["nft_record"] if live.from_record else nftrecord.encode(live.nft, listed_at)
    add = {}
    for name, items in added.items():
        rows = []
        for key, text in items:
            end = ends.get(key)
            comment = _COMMENT.search(text)
            rows.append((key, started_at + (end - planned_at).total_seconds() if end else None,
                         comment.group(1) if comment else None))
        add[name] = rows
    return nftrecord.changed(base, {k: list(v) for k, v in delete.items()}, add, started_at)
