"""plan and apply against the fake host: order of steps, rollback, verification, key files."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.apply.engine import ApplyError, execute, prepare
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.host.base import read
from gatewayctl.host.errors import HostError
from gatewayctl.host.fake import FakeHost
from gatewayctl.host.wgtypes import DeviceUpdate, public_of
from gatewayctl.pipeline import compile_profiles
from gatewayctl.plan.render import plan_json, plan_text
from gatewayctl.plan.secrets import Secrets
from gatewayctl.render.environment import make_environment
from tests.conftest import AT_DT, PROFILES

ENV = make_environment()


class RecordingHost(FakeHost):
    """The fake host, also keeping every ruleset it was asked to load."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.element_ops = []
        self.flushed: list[tuple[str, ...]] = []

    def nft_load(self, text: str) -> None:
        super().nft_load(text)
        self.loaded.append(text)

    def nft_elements(self, table: str, delete: dict[str, list[str]], add: dict[str, list[str]],
                     flush: tuple[str, ...] = ()) -> None:
        super().nft_elements(table, delete, add, flush)
        self.element_ops.append((delete, add))
        self.flushed.append(flush)

    element_ops: list[tuple[dict[str, list[str]], dict[str, list[str]]]]


def keyfile(path: Path, raw: bytes) -> str:
    path.write_text(base64.b64encode(raw).decode() + "\n")
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """The example estate with a gateway key and preshared keys generated for the test."""
    root = tmp_path / "profiles"
    shutil.copytree(PROFILES, root)
    gateway_key = os.urandom(32)
    text = (root / "gateway.yaml").read_text()
    text = text.replace("ZVPBzda+ILGkL+7zE8mMDqcWH3mCGuXsLMJ4P35OdXA=", public_of(gateway_key))
    text = text.replace("/etc/gatewayctl/wg-partners.key", keyfile(tmp_path / "gw.key", gateway_key))
    (root / "gateway.yaml").write_text(text + f"host:\n  preshared_key_dir: {tmp_path}\n")
    for partner, peer in (("acme", "acme-hq"), ("globex", "globex-dc1")):
        path = root / "partners" / f"{partner}.yaml"
        psk = keyfile(tmp_path / f"{peer}.psk", os.urandom(32))
        path.write_text(path.read_text().replace(f"/etc/gatewayctl/psk/{peer}.psk", psk))
    return root


def policy_of(root: Path) -> CompiledPolicy:
    return compile_profiles(root, AT_DT).policy


def apply(policy: CompiledPolicy, host: FakeHost) -> Any:
    secrets = Secrets()
    prep = prepare(policy, host, ENV, secrets, AT_DT, {})
    execute(prep, host, ENV, secrets)
    return prep


def edit(root: Path, partner: str, old: str, new: str) -> None:
    path = root / "partners" / f"{partner}.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def test_first_apply_creates_everything_and_second_plan_is_empty(estate: Path) -> None:
    host = RecordingHost()
    prep = apply(policy_of(estate), host)
    kinds = [c.kind for c in prep.plan.changes]
    assert kinds.count("peer-missing") == 5 and "interface-missing" in kinds and "table-missing" in kinds
    device = host.devices["wg-partners"]
    assert len(device.peers) == 5 and device.listen_port == 51820
    assert host.links["wg-partners"]["routes"] == ["100.64.20.0/24"]
    again = prepare(policy_of(estate), host, ENV, Secrets(), AT_DT, {})
    assert again.plan.empty, plan_text(again.plan)
    # the firewall was closed (no grant element) while the peers were being added
    assert "10.250.1.1 . 10.1.0.5" not in host.loaded[0] and "10.250.1.1 . 10.1.0.5" in host.loaded[-1]


def test_firewall_narrows_before_peers_change_and_widens_after(estate: Path) -> None:
    host = RecordingHost()
    apply(policy_of(estate), host)
    edit(estate, "acme", "  - service: edi-sftp", "  - service: file-drop")  # one grant out, one in
    edit(estate, "acme", "keepalive: 25", "keepalive: 10")
    host.calls.clear()
    apply(policy_of(estate), host)
    # element changes in place (other elements keep their counters): remove (and empty the flow cache
    # in the same transaction), then peers, then add
    assert host.calls == ["nft_elements", "wg_update", "nft_elements"]
    assert host.flushed[-2:] == [("seen4", "seen6"), ()]
    (removed, none), (nothing, added) = host.element_ops[-2:]
    assert removed == {"grants4": ["10.250.1.1 . 10.1.0.20 . tcp . 22"]} and none == {} and nothing == {}
    assert added["ranges4"][0].startswith('10.250.1.1 . 10.1.0.21 . tcp . 8000-8010 timeout ')  # a port range
    assert prepare(policy_of(estate), host, ENV, Secrets(), AT_DT, {}).plan.empty


def test_new_partner_replaces_the_table_through_the_intersection(estate: Path) -> None:
    host = RecordingHost()
    apply(policy_of(estate), host)
    hooli = (estate / "partners" / "initech.yaml").read_text().replace("id: initech", "id: hooli").replace(
        "10.250.3.1/32", "10.250.9.1/32").replace("YmRKylJgVl1SvrThguWkAnSu5nWCEmrwpfWM3YSe1RE=", public_of(os.urandom(32)))
    (estate / "partners" / "hooli.yaml").write_text(hooli)
    edit(estate, "acme", "  - service: edi-sftp", "  - service: file-drop")
    host.calls.clear()
    host.loaded.clear()
    apply(policy_of(estate), host)
    assert host.calls == ["nft_load", "wg_update", "nft_load"]  # a new deny chain: the table is replaced
    narrowed, final = host.loaded
    assert "10.1.0.20 . tcp . 22" not in narrowed and "10.1.0.21 . tcp . 8000-8010" not in narrowed  # old ∩ new
    assert "10.250.9.1 . 10.1.0.10" not in narrowed and "10.250.9.1 . 10.1.0.10" in final
    assert "10.1.0.21 . tcp . 8000-8010" in final and "10.1.0.20 . tcp . 22" not in final


def test_a_shortened_expiry_replaces_the_element_timer(estate: Path) -> None:
    host = RecordingHost()
    apply(policy_of(estate), host)
    edit(estate, "acme", "    expires: 2027-03-31", "    expires: 2026-12-15")
    prep = prepare(policy_of(estate), host, ENV, Secrets(), AT_DT, {})
    assert [c.kind for c in prep.plan.changes] == ["timeout-changed"]
    assert "kernel timer ends 2027-04-01 00:00Z, the grant 2026-12-16 00:00Z" in prep.plan.changes[0].detail
    execute(prep, host, ENV, Secrets())
    assert "10.250.1.1 . 10.1.0.10 . tcp . 443 timeout 15d comment" in host.tables["gatewayctl"]


def test_peer_removal_closes_the_firewall_first(estate: Path) -> None:
    host = RecordingHost()
    apply(policy_of(estate), host)
    (estate / "partners" / "initech.yaml").unlink()
    host.calls.clear()
    host.loaded.clear()
    prep = apply(policy_of(estate), host)
    assert [c.kind for c in prep.plan.changes if c.area == "peer"] == ["peer-unexpected"]
    assert host.calls[:2] == ["nft_load", "wg_update"]
    assert "10.250.3.1" not in host.loaded[0]


def test_refusal_midway_restores_table_and_peers(estate: Path) -> None:
    host = RecordingHost()
    apply(policy_of(estate), host)
    before_table = read(host, "wg-partners", "gatewayctl").nft
    before_peers = json.dumps(host.devices["wg-partners"].peers, default=str, sort_keys=True)
    edit(estate, "acme", "keepalive: 25", "keepalive: 10")
    edit(estate, "acme", "  - service: edi-sftp", "  - service: file-drop")
    host.fail_next["wg_update"] = "wireguard-go refused the request (errno=-22)"
    secrets = Secrets()
    prep = prepare(policy_of(estate), host, ENV, secrets, AT_DT, {})
    with pytest.raises(ApplyError) as info:
        execute(prep, host, ENV, secrets)
    assert info.value.rolled_back and "errno=-22" in str(info.value)
    after_table = read(host, "wg-partners", "gatewayctl").nft
    assert after_table == before_table
    assert after_table is not None and before_table is not None
    # timers put back too, each ending when it ended before: never later, and at most the second the
    # kernel rounds to earlier
    before, after = before_table.sets["grants4"].expires, after_table.sets["grants4"].expires
    assert before.keys() == after.keys() and all(before[k] - 1 <= after[k] <= before[k] for k in before), (before, after)
    assert json.dumps(host.devices["wg-partners"].peers, default=str, sort_keys=True) == before_peers


class ForgetfulHost(RecordingHost):
    """Acknowledges peer updates without doing them: verification must notice."""

    def wg_update(self, ifname: str, backend: str, update: DeviceUpdate) -> None:
        super().wg_update(ifname, backend, dataclasses.replace(update, upsert=update.upsert[:-1]))


def test_verification_catches_a_host_that_did_not_do_it(estate: Path) -> None:
    host = ForgetfulHost()
    with pytest.raises(ApplyError, match="does not match the plan after applying") as info:
        apply(policy_of(estate), host)
    assert info.value.rolled_back
    assert "gatewayctl" not in host.tables  # there was no table before: none after the rollback


def test_blockers_forwarding_off(estate: Path) -> None:
    host = FakeHost(forwarding={"ipv4": "0", "ipv6": "1"})
    prep = prepare(policy_of(estate), host, ENV, Secrets(), AT_DT, {})
    assert any("IPv4 forwarding is off" in b for b in prep.plan.blockers)


def test_private_key_file_readable_by_others_is_refused(estate: Path, tmp_path: Path) -> None:
    os.chmod(tmp_path / "gw.key", 0o644)
    with pytest.raises(HostError, match=r"accessible to group or others \(mode 0644\); run: chmod 600"):
        prepare(policy_of(estate), FakeHost(), ENV, Secrets(), AT_DT, {})


def test_key_file_that_does_not_match_gateway_yaml_is_refused(estate: Path, tmp_path: Path) -> None:
    keyfile(tmp_path / "gw.key", os.urandom(32))
    with pytest.raises(HostError, match=r"does not belong to the public key in gateway\.yaml") as info:
        prepare(policy_of(estate), FakeHost(), ENV, Secrets(), AT_DT, {})
    assert (tmp_path / "gw.key").read_text().strip() not in str(info.value)


def test_plan_output_never_shows_a_key(estate: Path, tmp_path: Path) -> None:
    host = FakeHost()
    prep = prepare(policy_of(estate), host, ENV, Secrets(), AT_DT, {})
    rendered = plan_text(prep.plan) + json.dumps(plan_json(prep.plan))
    secrets = [(tmp_path / name).read_text().strip() for name in ("gw.key", "acme-hq.psk", "globex-dc1.psk")]
    publics = [p.public_key for p in policy_of(estate).interface.peers]
    assert not any(s in rendered for s in secrets + publics)
    assert "+ peer acme/acme-hq: allowed IPs 10.250.1.1/32" in rendered


class RefusingHost(FakeHost):
    """Refuses the full ruleset the way nft does, pointing at the line of one grant element."""

    def __init__(self, element: str) -> None:
        super().__init__()
        self.element = element

    def nft_load(self, text: str) -> None:
        lines = text.splitlines()
        hit = next((i for i, line in enumerate(lines, 1) if line.strip().startswith(self.element)), None)
        if hit is not None:
            raise HostError(f"the kernel refused the ruleset (the live ruleset is as it was): ruleset:{hit}:4-40: Error: "
                            "Could not process rule: File exists")
        super().nft_load(text)


def test_a_refused_element_is_named_with_its_grant_and_profile_line(estate: Path) -> None:
    from gatewayctl.compile.origin import grant_locator

    compiled = compile_profiles(estate, AT_DT)
    host = RefusingHost("10.250.1.1 . 10.1.0.5 . tcp . 443")
    prep = prepare(compiled.policy, host, ENV, Secrets(), AT_DT, {})
    prep = dataclasses.replace(prep, locate=grant_locator(compiled.estate, compiled.policy))
    with pytest.raises(ApplyError) as failed:
        execute(prep, host, ENV, Secrets())
    acme = (estate / "partners" / "acme.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(acme, 1) if text.strip() == "- service: crm-api")
    assert f"partners/acme.yaml:{line}" in str(failed.value), str(failed.value)
    assert "acme/crm-api" in str(failed.value) and failed.value.rolled_back


def test_allowed_ips_difference_says_what_the_host_has_and_what_the_profiles_say() -> None:
    from gatewayctl.host.wgtypes import PeerState
    from gatewayctl.plan.diff import peer_differences
    from gatewayctl.plan.spec import PeerSpec

    spec = PeerSpec("acme", "hq", "k", frozenset({"10.250.1.1/32", "100.64.1.0/24"}), None, 0, None, None)
    live = PeerState("k", None, None, 0, frozenset({"10.250.1.1/32", "10.1.0.0/16"}))
    (words, kind), = peer_differences(spec, live)
    assert kind == "allowed-ips-changed"
    assert words == ("allowed IPs: the host has 10.1.0.0/16, 10.250.1.1/32, the profiles say 10.250.1.1/32, "
                     "100.64.1.0/24 (apply adds 100.64.1.0/24 and removes 10.1.0.0/16)")


@pytest.mark.parametrize("replace", [False, True], ids=["elements", "table"])
def test_a_rollback_that_runs_later_puts_elements_back_ending_when_they_ended(estate: Path, replace: bool,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-man timer rolls back minutes to a day after the apply: the elements it puts back end
    at their old end instants, never later; one whose end passed meanwhile stays out."""
    from gatewayctl.apply import engine, timers
    from gatewayctl.apply.engine import restore

    host = RecordingHost()
    apply(policy_of(estate), host)
    before = read(host, "wg-partners", "gatewayctl").nft
    assert before is not None
    timed = before.sets["grants4"].expires
    edit(estate, "acme", "  - service: edi-sftp", "  - service: file-drop")  # an element of acme's goes
    if replace:
        edit(estate, "acme", "keepalive: 25", "keepalive: 10")
    secrets = Secrets()
    prep = prepare(policy_of(estate), host, ENV, secrets, AT_DT, {})
    if replace:
        prep = dataclasses.replace(prep, plan=dataclasses.replace(prep.plan, nft_replace=True))
    rollback = engine.execute(prep, host, ENV, secrets)
    gone = sorted(set(timed) - set(read(host, "wg-partners", "gatewayctl").nft.sets["grants4"].elements))
    assert gone, "the edit removes an element with a timer"
    shortest = min(timed[k] for k in gone)
    wait = min(shortest - 5, 3600)  # the timer ran this long: every removed element still has time left
    later = timers.now() + wait
    monkeypatch.setattr(timers, "now", lambda: later)
    restore(rollback, host)  # (the fake host's clock stays: what is listed is what restore loaded)
    after = read(host, "wg-partners", "gatewayctl").nft.sets["grants4"].expires
    for key in gone:
        assert timed[key] - wait - 2 <= after[key] <= timed[key] - wait, (key, timed[key], wait, after[key])
