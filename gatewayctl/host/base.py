"""The host interface: read a snapshot of live state, apply changes. Implemented by RealHost and FakeHost.

Reading is two halves: `snapshot()` acquires raw data (plain JSON-able values), and the pure
`parse_snapshot()` turns it into typed `LiveState`; parsers are tested on captured snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatewayctl.host import nftrecord, uapi
from gatewayctl.host.bypassstate import ForeignState, parse_foreign
from gatewayctl.host.nftstate import ForeignChain, NftTableState, parse_foreign_chains, parse_table
from gatewayctl.host.wgtypes import DeviceState, DeviceUpdate


@dataclass(frozen=True)
class LinkState:
    name: str
    up: bool
    mtu: int
    kind: str | None
    addresses: frozenset[str]
    routes: frozenset[str]


@dataclass(frozen=True)
class LiveState:
    """What the host runs now, for one interface and gatewayctl's table."""

    link: LinkState | None
    wg_backend: str | None
    wg: DeviceState | None
    wg_error: str | None
    nft: NftTableState | None
    foreign_chains: tuple[ForeignChain, ...]
    forwarding4: bool
    forwarding6: bool
    guard: bool = False  # apply's guard table is loaded (left by an interrupted apply, or a refused one)
    foreign: ForeignState = field(default_factory=ForeignState)  # other tables, iptables-legacy, other WireGuard devices
    # the nftables generation the table was read at (None: unknown, or it changed while listing), and
    # whether `nft` comes from the state folder's record, proven current by that generation
    generation: tuple[str, int, int] | None = None
    from_record: bool = False


class Host(Protocol):
    """The only way gatewayctl touches a gateway."""

    def snapshot(self, ifname: str, table: str, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Acquire raw live state for one interface and one table. `known`: a table record
        (apply/tablerecord.py); when the host's nftables generation is the record's, the table is not
        listed and the snapshot says `nft_proven` (the caller puts the record in)."""
        ...

    def generation(self) -> tuple[str, int, int] | None:
        """(boot id, namespace cookie, nftables generation id), or None when it cannot be read."""
        ...

    @property
    def nft_writes(self) -> int | None:
        """How many nftables transactions this host object has committed, or None once a write may have
        committed nothing (then no count of them proves anything)."""
        ...

    def nft_canonical(self, text: str, table: str) -> NftTableState:
        """The table a ruleset text defines, in the form `snapshot` reads it back."""
        ...

    def nft_load(self, text: str) -> None:
        """Load a ruleset text atomically (all or nothing); raise HostError on refusal."""
        ...

    def nft_delete(self, table: str) -> None: ...

    def nft_list_text(self, table: str) -> str | None:
        """The table as nft text (elements with their remaining timers), to restore it later; None if absent."""
        ...

    def nft_elements(self, table: str, delete: dict[str, list[str]], add: dict[str, list[str]],
                     flush: tuple[str, ...] = ()) -> None:
        """Delete, then add, set and map elements in one transaction (element text as in a ruleset);
        the sets in `flush` are emptied in the same transaction when anything is deleted."""
        ...

    def nft_get_elements(self, table: str, name: str, keys: list[str]) -> frozenset[str]:
        """Which of `keys` are elements of the set or map, exactly (not merely covered by a wider one)."""
        ...

    def wg_read(self, ifname: str, backend: str) -> str:
        """The device's raw UAPI `get` text (secrets included: parse it, never print it)."""
        ...

    def wg_create(self, ifname: str) -> str:
        """Create a WireGuard interface; return the backend used ("kernel" or "userspace")."""
        ...

    def wg_update(self, ifname: str, backend: str, update: DeviceUpdate) -> None: ...

    def wg_destroy(self, ifname: str, backend: str) -> None:
        """Remove a WireGuard interface this host's gatewayctl created (and its wireguard-go, by PID)."""
        ...

    def link_configure(self, ifname: str, mtu: int | None, up: bool | None) -> None: ...

    def address(self, ifname: str, cidr: str, add: bool) -> None: ...

    def route(self, ifname: str, dst: str, add: bool) -> None: ...

    def conntrack_list(self) -> list[dict[str, Any]]:
        """Every tracked flow, by its original direction: {family, proto, src, dst, sport, dport, icmp_id, icmp_type}."""
        ...

    def conntrack_delete(self, flows: list[dict[str, Any]]) -> int:
        """Delete exactly these tracked flows (never the whole table); return how many went."""
        ...


def read(host: Host, ifname: str, table: str) -> LiveState:
    return parse_snapshot(host.snapshot(ifname, table))


def parse_snapshot(raw: dict[str, Any], peers: set[str] | None = None) -> LiveState:
    """Pure: raw snapshot -> typed state (of the device, only the peers whose keys are in `peers`, when given)."""
    link = raw.get("link")
    link_state = None
    if link is not None:
        link_state = LinkState(link["name"], bool(link["up"]), int(link["mtu"]), link.get("kind"),
                               frozenset(link["addresses"]), frozenset(link["routes"]))
    wg = uapi.parse_get(raw["wg_raw"], only=peers) if raw.get("wg_raw") is not None else None
    table = raw["table"]
    from_record = bool(raw.get("nft_proven")) and raw.get("nft_record") is not None
    if from_record:
        nft: NftTableState | None = nftrecord.decode(raw["nft_record"], float(raw["nft_listed_at"]))
    else:
        nft = parse_table(raw["nft_table"], table) if raw.get("nft_table") else None
    generation = raw.get("nft_generation")
    forwarding = raw.get("forwarding", {})
    return LiveState(
        link=link_state, wg_backend=raw.get("wg_backend"), wg=wg, wg_error=raw.get("wg_error"), nft=nft,
        foreign_chains=parse_foreign_chains(raw.get("nft_chains") or {}, table),
        forwarding4=forwarding.get("ipv4") == "1", forwarding6=forwarding.get("ipv6") == "1",
        foreign=parse_foreign(raw.get("foreign"), table), guard=bool(raw.get("guard")),
        generation=(str(generation[0]), int(generation[1]), int(generation[2])) if generation else None,
        from_record=from_record,
    )
