"""Which state of the kernel's nftables a record was taken from: (boot id, network namespace cookie,
nftables generation id).

The kernel counts every committed nftables transaction of a network namespace in its generation id
(NFT_MSG_GETGEN, asked here over a netlink socket of its own): an unchanged id in the same namespace of the same boot
proves that no table, chain, rule, set or element was added, changed or removed since, by anyone.
What changes without a transaction is known in advance: elements leave when their timeout ends, the
packet path fills the dynamic sets (seen4/6), and counters count. The namespace cookie (SO_NETNS_COOKIE)
is never reused within a boot, and the boot id is new at each boot, so a namespace made again, or the
host rebooted, never matches an old record even when its generation id is the same number.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SO_NETNS_COOKIE = 71  # linux/socket.h (not in Python 3.11's socket module)
# The kernel's element timers run on its own clock (jiffies), records keep wall-clock ends: a record
# holds only while the wall clock keeps its offset to the monotonic clock (no step by NTP or by hand,
# no suspend, during which neither the monotonic clock nor the kernel's timers run).
CLOCK_TOLERANCE_S = 1.0


def clock_offset() -> float:
    """The wall clock less the monotonic clock, now."""
    return time.time() - time.monotonic()


def current() -> tuple[str, int, int] | None:
    """(boot id, namespace cookie, generation id) of the calling thread's network namespace, or None
    when any of them cannot be read (then nothing is proven, and the caller lists the table)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            cookie = struct.unpack("=Q", probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
        return boot, int(cookie), _generation_id()
    except (OSError, ValueError, struct.error, LookupError):
        return None


def proves(known: Mapping[str, Any] | None, gen: tuple[str, int, int] | None, table: str) -> bool:
    """Whether a table record (apply/tablerecord.py) is the table now: taken at generation `gen` (the
    current one) of the same boot and namespace, for `table`, with the wall clock as it was."""
    if known is None or gen is None or known.get("generation") != list(gen) or known.get("table") != table:
        return False
    offset = known.get("clock")
    return isinstance(offset, float) and abs(offset - clock_offset()) <= CLOCK_TOLERANCE_S


# NFT_MSG_GETGEN asked directly (linux/netfilter/nfnetlink.h, nf_tables.h): one request and one
# answer, where importing pyroute2 for it cost every apply about 0.09 s. tests/test_generation.py holds
# this reading to pyroute2's own NFTSocket in a namespace, and to its counting of transactions.
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN, NFT_MSG_NEWGEN = 10, 16, 15
NLMSG_ERROR, NLM_F_REQUEST, NFTA_GEN_ID = 2, 1, 1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, resource id
_ATTR = struct.Struct("=HH")  # nlattr: length, type; payloads padded to 4 bytes


def _generation_id() -> int:
    """The nftables generation id of the calling thread's network namespace; raises OSError or
    LookupError when the kernel does not answer as nf_tables does."""
    kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN
    request = _HEADER.pack(_HEADER.size + _NFGEN.size, kind, NLM_F_REQUEST, 1, 0) + _NFGEN.pack(socket.AF_UNSPEC, 0, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as nl:
        nl.settimeout(5)
        nl.sendto(request, (0, 0))
        answer = nl.recv(65536)
    return parse_answer(answer)


def parse_answer(answer: bytes) -> int:
    """NFTA_GEN_ID of a NFT_MSG_NEWGEN answer (the first message of `answer`); LookupError for anything else."""
    if len(answer) < _HEADER.size:
        raise LookupError(f"NFT_MSG_GETGEN: short answer ({len(answer)} bytes)")
    length, kind, _, _, _ = _HEADER.unpack_from(answer)
    if kind == NLMSG_ERROR and length >= _HEADER.size + 4:
        code = -struct.unpack_from("=i", answer, _HEADER.size)[0]
        raise LookupError(f"NFT_MSG_GETGEN refused: {os.strerror(code)}")
    if kind != NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN or not _HEADER.size + _NFGEN.size <= length <= len(answer):
        raise LookupError(f"unexpected answer to NFT_MSG_GETGEN: message type {kind}, {length} bytes")
    offset, ids = _HEADER.size + _NFGEN.size, []
    while offset + _ATTR.size <= length:
        size, attr = _ATTR.unpack_from(answer, offset)
        if size < _ATTR.size or offset + size > length:
            raise LookupError("unexpected answer to NFT_MSG_GETGEN: a malformed attribute")
        if attr & 0x3FFF == NFTA_GEN_ID and size == _ATTR.size + 4:
            ids.append(struct.unpack_from(">I", answer, offset + _ATTR.size)[0])
        offset += (size + 3) & ~3
    if len(ids) != 1:
        raise LookupError(f"unexpected answer to NFT_MSG_GETGEN: {len(ids)} generation ids")
    return int(ids[0])
