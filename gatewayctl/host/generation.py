"""Which state of the kernel's nftables a record was taken from: (boot id, network namespace cookie,
nftables generation id).

The kernel counts every committed nftables transaction of a network namespace in its generation id
(NFT_MSG_GETGEN, read here through pyroute2): an unchanged id in the same namespace of the same boot
proves that no table, chain, rule, set or element was added, changed or removed since, by anyone.
What changes without a transaction is known in advance: elements leave when their timeout ends, the
packet path fills the dynamic sets (seen4/6), and counters count. The namespace cookie (SO_NETNS_COOKIE)
is never reused within a boot, and the boot id is new at each boot, so a namespace made again, or the
host rebooted, never matches an old record even when its generation id is the same number.
"""

from __future__ import annotations

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


def _generation_id() -> int:
    from pyroute2.netlink import NLM_F_REQUEST
    from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETGEN, NFTSocket, nft_gen_msg

    with NFTSocket() as nl:
        replies = list(nl.request_get(nft_gen_msg(), NFT_MSG_GETGEN, msg_flags=NLM_F_REQUEST))
    ids = [m.get_attr("NFTA_GEN_ID") for m in replies]
    if len(ids) != 1 or not isinstance(ids[0], int):
        raise LookupError(f"unexpected answer to NFT_MSG_GETGEN: {ids}")
    return ids[0]
