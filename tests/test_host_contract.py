"""One contract, two hosts: the fake used by unit tests and the real one in a fresh namespace.

Each test gets a `host` and runs its operations through `call`, which on the real host executes
them in a worker thread that entered a throwaway network namespace.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from gatewayctl.host import generation, uapi
from gatewayctl.host.base import Host, LiveState, parse_snapshot
from gatewayctl.host.errors import HostError
from gatewayctl.host.fake import FakeHost
from gatewayctl.host.netns import enter, run_in_thread
from gatewayctl.host.real import RealHost
from gatewayctl.host.wgtypes import DeviceUpdate, PeerConfig, fingerprint, public_of
from tests.conftest import REPO
from tests.netns import Namespace, unique

T = TypeVar("T")
RULESET = (REPO / "tests/golden/example/nftables/gatewayctl.nft").read_text()


@dataclass
class Subject:
    host: Host
    ns: str | None
    ifname: str

    def call(self, work: Callable[[], T]) -> T:
        if self.ns is None:
            return work()
        name = self.ns
        return run_in_thread(lambda: enter(name), work)

    def read(self) -> LiveState:
        return self.call(lambda: parse_snapshot(self.host.snapshot(self.ifname, "gatewayctl")))


@pytest.fixture(params=["fake", "real"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    ifname = unique("gwc")
    if request.param == "fake":
        yield Subject(FakeHost(), None, ifname)
        return
    request.getfixturevalue("needs_root")
    with Namespace.create("gwc") as ns:
        yield Subject(RealHost(log_dir=tmp_path), ns.name, ifname)
        pidfile = tmp_path / f"wireguard-go-{ifname}.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def key(n: int) -> bytes:
    return bytes([n]) * 31 + b"\x40"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_missing_interface_reads_as_absent(subject: Subject) -> None:
    live = subject.read()
    assert live.link is None and live.wg is None and live.nft is None


def test_created_interface_is_a_wireguard_device(subject: Subject) -> None:
    backend = subject.call(lambda: subject.host.wg_create(subject.ifname))
    live = subject.read()
    assert backend in ("kernel", "userspace") and live.wg_backend == backend
    assert live.link is not None and live.wg is not None and live.wg.peers == {}


def test_peers_keys_and_port(subject: Subject) -> None:
    subject.call(lambda: subject.host.wg_create(subject.ifname))
    peers = (PeerConfig(public_of(key(2)), "192.0.2.7:51820", 25, ("10.250.1.1/32", "100.64.9.0/24"), key(9)),
             PeerConfig(public_of(key(3)), None, 0, ("10.250.1.2/32",)))
    update = DeviceUpdate(listen_port=51888, private_key=key(1), upsert=peers)
    subject.call(lambda: subject.host.wg_update(subject.ifname, "userspace", update))
    wg = subject.read().wg
    assert wg is not None and wg.listen_port == 51888 and wg.public_key == public_of(key(1))
    first = wg.peers[public_of(key(2))]
    assert first.allowed_ips == {"10.250.1.1/32", "100.64.9.0/24"} and first.keepalive == 25
    assert first.endpoint == "192.0.2.7:51820" and first.psk_fingerprint == fingerprint(key(9))
    assert wg.peers[public_of(key(3))].psk_fingerprint is None


def test_targeted_update_leaves_other_peers_alone_and_remove_removes(subject: Subject) -> None:
    subject.call(lambda: subject.host.wg_create(subject.ifname))
    a, b = public_of(key(2)), public_of(key(3))
    subject.call(lambda: subject.host.wg_update(subject.ifname, "userspace", DeviceUpdate(
        listen_port=51889, upsert=(PeerConfig(a, None, 0, ("10.250.1.1/32",)), PeerConfig(b, None, 0, ("10.250.1.2/32",))))))
    subject.call(lambda: subject.host.wg_update(subject.ifname, "userspace", DeviceUpdate(
        upsert=(PeerConfig(a, None, 5, ("10.250.1.1/32", "10.250.1.9/32")),), remove=(b,))))
    wg = subject.read().wg
    assert wg is not None and set(wg.peers) == {a}
    assert wg.peers[a].allowed_ips == {"10.250.1.1/32", "10.250.1.9/32"} and wg.peers[a].keepalive == 5
    assert wg.listen_port == 51889


def test_loaded_ruleset_reads_back_as_its_canonical_form(subject: Subject) -> None:
    subject.call(lambda: subject.host.nft_load(RULESET))
    live = subject.read()
    assert live.nft == subject.call(lambda: subject.host.nft_canonical(RULESET, "gatewayctl"))
    assert "10.250.1.1 . 10.1.0.5 . tcp . 443" in live.nft.sets["grants4"].elements
    text = subject.call(lambda: subject.host.nft_list_text("gatewayctl"))
    assert text is not None and "grants4" in text


def test_refused_ruleset_changes_nothing(subject: Subject) -> None:
    subject.call(lambda: subject.host.nft_load(RULESET))
    before = subject.read().nft
    broken = RULESET.replace("table inet gatewayctl {\n\tset grants4", "bogus inet gatewayctl {\n\tset grants4")
    with pytest.raises(HostError):
        subject.call(lambda: subject.host.nft_load(broken))
    assert subject.read().nft == before


def test_delete_table(subject: Subject) -> None:
    subject.call(lambda: subject.host.nft_load(RULESET))
    subject.call(lambda: subject.host.nft_delete("gatewayctl"))
    assert subject.read().nft is None
    assert subject.call(lambda: subject.host.nft_list_text("gatewayctl")) is None


def test_link_mtu_state_addresses_routes(subject: Subject) -> None:
    subject.call(lambda: subject.host.wg_create(subject.ifname))
    subject.call(lambda: subject.host.link_configure(subject.ifname, 1380, True))
    subject.call(lambda: subject.host.address(subject.ifname, "10.250.0.1/16", True))
    subject.call(lambda: subject.host.route(subject.ifname, "100.64.20.0/24", True))
    link = subject.read().link
    assert link is not None and link.mtu == 1380 and link.up
    assert "10.250.0.1/16" in link.addresses and link.routes == {"100.64.20.0/24"}
    subject.call(lambda: subject.host.route(subject.ifname, "100.64.20.0/24", False))
    subject.call(lambda: subject.host.address(subject.ifname, "10.250.0.1/16", False))
    link = subject.read().link
    assert link is not None and link.routes == frozenset() and "10.250.0.1/16" not in link.addresses


def test_operations_on_a_missing_interface_fail_clearly(subject: Subject) -> None:
    with pytest.raises(HostError, match=r"does not exist|no WireGuard"):
        subject.call(lambda: subject.host.link_configure(subject.ifname, 1400, None))


@pytest.mark.parametrize("value", ["0", "1"])
def test_forwarding_is_read(subject: Subject, value: str) -> None:
    if isinstance(subject.host, FakeHost):
        subject.host.forwarding["ipv4"] = value
    else:
        subprocess.run(["ip", "netns", "exec", str(subject.ns), "sysctl", "-qw", f"net.ipv4.ip_forward={value}"], check=True)
    assert subject.read().forwarding4 is (value == "1")


def test_element_update_is_one_transaction(subject: Subject) -> None:
    subject.call(lambda: subject.host.nft_load(RULESET))
    table = "gatewayctl"
    subject.call(lambda: subject.host.nft_elements(
        table, {"grants4": ["10.250.1.1 . 10.1.0.5 . tcp . 443"]},
        {"grants4": ['10.250.3.1 . 10.2.0.5 . tcp . 5432 timeout 2d comment "initech/erp-db"'],
         "deny4": ["10.250.9.1 : goto deny_acme"]}))
    asked = ["10.250.3.1 . 10.2.0.5 . tcp . 5432", "10.250.1.1 . 10.1.0.5 . tcp . 443", "10.250.1.1 . 10.1.0.20 . tcp . 22"]
    grants = subject.call(lambda: subject.host.nft_get_elements(table, "grants4", asked))
    assert grants == {"10.250.3.1 . 10.2.0.5 . tcp . 5432", "10.250.1.1 . 10.1.0.20 . tcp . 22"}
    subject.call(lambda: subject.host.nft_elements(table, {}, {"ranges4": ['10.250.5.0/24 . 10.1.0.0/24 . tcp . 1-1000 comment "w"']}))
    covered = "10.250.5.7 . 10.1.0.99 . tcp . 80"  # inside the wider element, but not an element itself
    assert subject.call(lambda: subject.host.nft_get_elements(table, "ranges4", [covered])) == frozenset()
    deny = ["10.250.9.1 : goto deny_acme", "10.250.9.2 : goto deny_acme"]
    assert subject.call(lambda: subject.host.nft_get_elements(table, "deny4", deny)) == {"10.250.9.1 : goto deny_acme"}
    live = subject.read().nft
    assert live is not None and 170000 <= live.sets["grants4"].expires["10.250.3.1 . 10.2.0.5 . tcp . 5432"] <= 172800
    before = subject.read().nft
    with pytest.raises(HostError):  # deleting a missing element fails the whole transaction
        subject.call(lambda: subject.host.nft_elements(
            table, {"grants4": ["10.250.7.7 . 10.1.0.5 . tcp . 443"]},
            {"grants4": ['10.250.3.1 . 10.1.0.5 . tcp . 443 comment "x"']}))
    assert subject.read().nft == before


def test_wg_read_returns_the_device_configuration(subject: Subject) -> None:
    backend = subject.call(lambda: subject.host.wg_create(subject.ifname))
    subject.call(lambda: subject.host.wg_update(subject.ifname, backend, DeviceUpdate(
        listen_port=51890, upsert=(PeerConfig(public_of(key(4)), None, 0, ("10.250.4.4/32",)),))))
    device = uapi.parse_get(
        subject.call(lambda: subject.host.wg_read(subject.ifname, backend)))
    assert device.listen_port == 51890 and set(device.peers) == {public_of(key(4))}


def test_the_generation_moves_with_every_write_and_only_then(subject: Subject) -> None:
    """The proof a table record rests on (apply/tablerecord.py): reads leave the generation, each write
    that changes a table moves it by one, and nft_writes counts those writes."""
    gen = lambda: subject.call(subject.host.generation)  # noqa: E731
    start, writes = gen(), subject.host.nft_writes
    assert start is not None
    subject.read()
    assert gen() == start
    subject.call(lambda: subject.host.nft_load(RULESET))
    after_load = gen()
    assert after_load is not None and after_load[:2] == start[:2] and after_load[2] == start[2] + 1
    subject.read()
    subject.call(lambda: subject.host.nft_get_elements("gatewayctl", "grants4", ["10.250.1.1 . 10.1.0.5 . tcp . 443"]))
    assert gen() == after_load
    subject.call(lambda: subject.host.nft_elements("gatewayctl", {"grants4": ["10.250.1.1 . 10.1.0.5 . tcp . 443"]}, {},
                                                   flush=("seen4", "seen6")))
    subject.call(lambda: subject.host.nft_elements("gatewayctl", {}, {}))  # nothing to send: no transaction
    subject.call(lambda: subject.host.nft_delete("gatewayctl"))
    subject.call(lambda: subject.host.nft_delete("gatewayctl"))  # no table: nothing committed
    end = gen()
    assert end is not None and end[2] == start[2] + 3 and subject.host.nft_writes == writes + 3
    with pytest.raises(HostError):  # a refused write commits nothing and is not counted
        subject.call(lambda: subject.host.nft_elements("gatewayctl", {"grants4": ["10.250.7.7 . 10.1.0.5 . tcp . 443"]}, {}))
    assert gen() == end and subject.host.nft_writes == writes + 3
    subject.call(lambda: subject.host.nft_load(RULESET))
    deny = ["10.250.9.1 : goto deny_acme"]  # no timeout: added twice, the second commits nothing
    subject.call(lambda: subject.host.nft_elements("gatewayctl", {}, {"deny4": deny}))
    once = gen()
    subject.call(lambda: subject.host.nft_elements("gatewayctl", {}, {"deny4": deny}))
    assert once is not None and gen() == once and once[2] == end[2] + 2
    assert subject.host.nft_writes is None  # so no count of writes proves anything any more


def test_a_snapshot_skips_the_listing_only_at_the_recorded_generation(subject: Subject) -> None:
    subject.call(lambda: subject.host.nft_load(RULESET))
    now = subject.call(subject.host.generation)
    assert now is not None
    known = {"generation": list(now), "table": "gatewayctl", "clock": generation.clock_offset()}
    raw = subject.call(lambda: subject.host.snapshot(subject.ifname, "gatewayctl", known))
    assert raw["nft_proven"] and raw["nft_table"] is None and raw["nft_generation"] == now
    for stale in ({**known, "generation": [now[0], now[1], now[2] - 1]}, {**known, "generation": [now[0], now[1] + 1, now[2]]},
                  {**known, "generation": ["another boot", now[1], now[2]]}, {**known, "table": "other"},
                  {**known, "clock": known["clock"] + 30}):  # the wall clock stepped since: the record's ends are off
        raw = subject.call(lambda: subject.host.snapshot(subject.ifname, "gatewayctl", stale))  # noqa: B023
        assert not raw["nft_proven"] and raw["nft_table"] is not None and raw["nft_generation"] == now
