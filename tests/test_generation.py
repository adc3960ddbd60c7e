"""The nftables generation id (host/generation.py) asks the kernel with a netlink message of its own:
held here to pyroute2's NFTSocket and to the kernel's counting of transactions, in a namespace."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from gatewayctl.host import generation

PYROUTE2 = """
from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETGEN, NFTSocket, nft_gen_msg
from gatewayctl.host import generation
with NFTSocket() as nl:
    ids = [m.get_attr("NFTA_GEN_ID") for m in nl.request_get(nft_gen_msg(), NFT_MSG_GETGEN, msg_flags=NLM_F_REQUEST)]
print(ids[0], generation.current()[2])
"""


def _both(ns: str) -> tuple[int, int]:
    """(pyroute2's id, gatewayctl's id), read in the namespace one after the other (nothing commits between)."""
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PYROUTE2], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_generation_id_is_the_kernels_and_counts_transactions(netns: str) -> None:
    first, ours = _both(netns)
    assert ours == first
    for count in range(1, 4):  # each committed transaction counts once; a refused one does not
        subprocess.run(["ip", "netns", "exec", netns, "nft", "add", "table", "inet", f"t{count}"], check=True)
        refused = subprocess.run(["ip", "netns", "exec", netns, "nft", "add", "chain", "inet", "missing", "c"],
                                 capture_output=True)
        assert refused.returncode != 0
        theirs, ours = _both(netns)
        assert ours == theirs == first + count


def _message(kind: int, payload: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, 1, 0) + payload


NEWGEN = 10 << 8 | 15


@pytest.mark.parametrize(("answer", "said"), [
    (b"", "short answer"),
    (_message(2, struct.pack("=i", -1)), "refused: Operation not permitted"),
    (_message(NEWGEN - 1, b"\0" * 4), "message type"),
    (_message(NEWGEN, b"\0" * 4), "0 generation ids"),
    (_message(NEWGEN, b"\0" * 4 + struct.pack("=HH", 2, 1)), "malformed attribute"),
    (_message(NEWGEN, b"\0" * 4 + struct.pack("=HH", 40, 1) + b"\0" * 4), "malformed attribute"),
    (_message(NEWGEN, b"\0" * 4 + (struct.pack("=HH", 8, 1) + struct.pack(">I", 7)) * 2), "2 generation ids"),
])
def test_unexpected_answers_are_refused(answer: bytes, said: str) -> None:
    with pytest.raises(LookupError, match=said):
        generation.parse_answer(answer)


def test_answer_with_pid_and_name_attributes() -> None:
    """As the kernel answers: the id, the committing process's pid and its name (padded)."""
    name = b"nft\0"
    body = (b"\0\0\0\x05" + struct.pack("=HH", 8, 1) + struct.pack(">I", 123456) + struct.pack("=HH", 8, 2)
            + struct.pack(">I", 99) + struct.pack("=HH", 4 + len(name), 3) + name)
    assert generation.parse_answer(_message(NEWGEN, body)) == 123456
