"""Grant set elements made disjoint, so that every interval set loads and each piece names the grants behind it.

The kernel refuses an interval set whose elements overlap ("File exists"), and two grants can
overlap: `10.30.1.0/29 tcp 8000-8010` and `10.30.1.3 tcp 8005-8020` of one partner. An element is
a box, source x destination x ports, within one (family, protocol, gated) set; overlapping boxes
are cut into disjoint pieces. Each piece carries every grant that covers it (so a packet is
counted once, for each grant that allows it) and stays open until the latest of those grants
ends (no timeout if any of them has none). The union of the pieces is exactly the union of the
elements: nothing is widened or dropped. Adjacent elements are left alone (nft accepts them).

Cost. `disjoint` sorts the n elements, O(n log n), then scans them once: elements that cannot
overlap anything come back as they were (the same objects), which is every element of an
estate without overlaps. Only a run of elements whose sources overlap and that holds a possible
overlap (a nested destination, or one destination whose port ranges of one protocol meet) goes
to `split`, which costs O(k log k) for the k elements of that run plus its output: at most
(2k - 1) segments per dimension, so O(k^3) boxes in the worst case, each written as at most
(2w - 2)^2 CIDR pairs for an address width of w bits. Real overlaps involve a handful of grants.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gatewayctl.compile.ir import PortRange, SetElement
from gatewayctl.model.types import IPNetwork

Interval = tuple[int, int]  # inclusive
# An element's identity and place in the output, all numbers: family, source address, its prefix
# length, destination address, its prefix length, protocol, (first port, last port) or (0, 0).
Key = tuple[int, int, int, int, int, str, Interval]

_HOST_MASKS = {4: tuple((1 << (32 - n)) - 1 for n in range(33)), 6: tuple((1 << (128 - n)) - 1 for n in range(129))}
_WIDTH = {4: 32, 6: 128}


def disjoint(merged: Mapping[Key, SetElement]) -> list[SetElement]:
    """The elements sorted by key, with every run that holds an overlap replaced by its disjoint pieces."""
    keys = sorted(merged)
    elements = [merged[key] for key in keys]
    result: list[SetElement] = []
    done = 0
    for start, stop in _suspect_runs(keys):
        result += elements[done:start]
        result += split(elements[start:stop])
        done = stop
    return result + elements[done:] if done else elements


def _suspect_runs(keys: list[Key]) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of sorted keys whose sources overlap and that may hold an overlap.

    Prefixes nest or are apart, so in key order a source that starts before the run's end lies
    inside the run's first source; a run ends where a source starts after it."""
    start, suspect = 0, False
    family, src, src_end, dst, dst_end, proto, port_end = 0, (0, 0), -1, (0, 0), -1, "", -1
    for i, (fam, sa, sl, da, dl, pr, (first, last)) in enumerate(keys):
        if fam != family or sa > src_end:
            if suspect:
                yield start, i
            start, suspect = i, False
            family, src, src_end = fam, (sa, sl), sa | _HOST_MASKS[fam][sl]
            dst, dst_end, proto, port_end = (da, dl), da | _HOST_MASKS[fam][dl], pr, last
        elif suspect:
            continue
        elif (sa, sl) != src:  # a source inside another (validate keeps partner sources apart)
            suspect = True
        elif da > dst_end:  # past every earlier destination of this source
            dst, dst_end, proto, port_end = (da, dl), da | _HOST_MASKS[fam][dl], pr, last
        elif (da, dl) != dst:  # a destination inside another: split decides whether they meet
            suspect = True
        elif pr != proto:
            proto, port_end = pr, last
        elif first <= port_end:
            suspect = True
        else:
            port_end = last
    if suspect:
        yield start, len(keys)


@dataclass(frozen=True, slots=True)
class _Box:
    """An element as three inclusive intervals: source, destination, ports ((0, 0) without ports)."""

    ranges: tuple[Interval, Interval, Interval]
    element: SetElement

    @classmethod
    def of(cls, e: SetElement) -> _Box:
        ports = (e.ports.first, e.ports.last) if e.ports is not None else (0, 0)
        return cls((_span(e.source), _span(e.destination), ports), e)

    def meets(self, other: _Box) -> bool:
        return all(a[0] <= b[1] and b[0] <= a[1] for a, b in zip(self.ranges, other.ranges, strict=True))


def meet(a: SetElement, b: SetElement) -> bool:
    """Whether two elements share a flow: same family, protocol and set kind, and boxes that intersect."""
    return ((a.family, a.protocol, a.gated, a.ports is None) == (b.family, b.protocol, b.gated, b.ports is None)
            and _Box.of(a).meets(_Box.of(b)))


def _span(network: IPNetwork) -> Interval:
    return int(network.network_address), int(network.broadcast_address)


def split(elements: Sequence[SetElement]) -> list[SetElement]:
    """Disjoint elements covering exactly what `elements` cover, sorted by key; an element that meets
    no other comes back unchanged (the same object)."""
    groups: dict[tuple[int, str, bool, bool], list[_Box]] = {}
    for e in elements:
        groups.setdefault((e.family, e.protocol, e.gated, e.ports is None), []).append(_Box.of(e))
    result: list[SetElement] = []
    for (family, protocol, gated, portless), boxes in groups.items():
        for component in _components(boxes):
            if len(component) == 1:
                result.append(component[0].element)
                continue
            for ranges, members in _cells(component, 0, ()):
                result.extend(_pieces(ranges, members, family, protocol, gated, portless))
    result.sort(key=sort_key)
    return result


def sort_key(e: SetElement) -> Key:
    """The element's key, as build_table makes it."""
    ports = (e.ports.first, e.ports.last) if e.ports is not None else (0, 0)
    return (e.family, int(e.source.network_address), e.source.prefixlen, int(e.destination.network_address),
            e.destination.prefixlen, e.protocol, ports)


def _components(boxes: list[_Box]) -> list[list[_Box]]:
    """The boxes grouped so that two boxes that meet are in one group (connected components of
    "meets"); a sweep over the destination dimension finds the pairs, union-find joins them."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(boxes)), key=lambda i: boxes[i].ranges[1])
    active: list[int] = []
    for i in order:
        low = boxes[i].ranges[1][0]
        active = [j for j in active if boxes[j].ranges[1][1] >= low]
        for j in active:
            if boxes[i].meets(boxes[j]):
                parent[root(i)] = root(j)
        active.append(i)
    groups: dict[int, list[_Box]] = {}
    for i, box in enumerate(boxes):
        groups.setdefault(root(i), []).append(box)
    return list(groups.values())


def _cells(boxes: list[_Box], dim: int, prefix: tuple[Interval, ...]) -> Iterator[tuple[tuple[Interval, ...], list[_Box]]]:
    """Disjoint cells (source, destination, ports intervals) covering the boxes, each with the boxes
    that hold it: dimension by dimension, each cut into the coarsest segments of equal cover."""
    for cluster in _clusters(boxes, dim):
        if len(cluster) == 1:
            yield prefix + cluster[0].ranges[dim:], cluster
            continue
        for interval, members in _segments(cluster, dim):
            if dim == 2:
                yield (*prefix, interval), members
            else:
                yield from _cells(members, dim + 1, (*prefix, interval))


def _clusters(boxes: list[_Box], dim: int) -> Iterator[list[_Box]]:
    """The boxes in groups whose intervals in `dim` overlap each other (chained), in order."""
    ordered = sorted(boxes, key=lambda b: b.ranges[dim])
    group: list[_Box] = []
    reach = -1
    for box in ordered:
        low, high = box.ranges[dim]
        if group and low > reach:
            yield group
            group = []
        group.append(box)
        reach = max(reach, high) if len(group) > 1 else high
    if group:
        yield group


def _segments(boxes: list[_Box], dim: int) -> Iterator[tuple[Interval, list[_Box]]]:
    """The line of `dim` cut at every start and every end of a box, with the boxes covering each
    segment; segments covered by none are left out. Cover changes at every cut, so the segments are
    the coarsest possible."""
    starts: dict[int, list[int]] = {}
    stops: dict[int, list[int]] = {}
    for i, box in enumerate(boxes):
        low, high = box.ranges[dim]
        starts.setdefault(low, []).append(i)
        stops.setdefault(high + 1, []).append(i)
    cuts = sorted(starts.keys() | stops.keys())
    active: dict[int, _Box] = {}
    for left, right in itertools.pairwise(cuts):
        for i in stops.get(left, ()):
            del active[i]
        for i in starts.get(left, ()):
            active[i] = boxes[i]
        if active:
            yield (left, right - 1), [active[i] for i in sorted(active)]


def _pieces(ranges: tuple[Interval, ...], members: list[_Box], family: int, protocol: str, gated: bool,
            portless: bool) -> Iterator[SetElement]:
    """The set elements of one cell: its address intervals as CIDR prefixes, the grants of every box
    holding it, and the latest end among them."""
    if len(members) == 1 and ranges == members[0].ranges:
        yield members[0].element
        return
    sources = _networks(ranges[0], family, [m.element.source for m in members])
    destinations = _networks(ranges[1], family, [m.element.destination for m in members])
    ports = None if portless else PortRange(*ranges[2])
    ends = latest([m.element.ends_at for m in members])
    grants = tuple(sorted({g for m in members for g in m.element.grants}))
    for src in sources:
        for dst in destinations:
            yield SetElement(family, src, dst, protocol, ports, ends, grants, gated)


def latest(ends: Sequence[dt.datetime | None]) -> dt.datetime | None:
    """When the last of these ends; None (never, within the agreement) if any has no end."""
    if any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)


def _networks(interval: Interval, family: int, known: list[IPNetwork]) -> list[IPNetwork]:
    """The interval as CIDR prefixes; an interval that is one of the boxes' own networks keeps that object."""
    for network in known:
        if _span(network) == interval:
            return [network]
    make = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    return [make((address, length)) for address, length in cidrs(interval[0], interval[1], _WIDTH[family])]


def cidrs(first: int, last: int, width: int) -> list[tuple[int, int]]:
    """The fewest (address, prefix length) blocks that cover first..last exactly, in order: each block
    is the largest one aligned at the current start that does not pass `last`."""
    blocks = []
    while first <= last:
        size = first & -first if first else 1 << width
        while size > last - first + 1:
            size >>= 1
        blocks.append((first, width - size.bit_length() + 1))
        first += size
    return blocks
