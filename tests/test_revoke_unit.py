"""revoke on the fake host: exactly the revoked grant's elements go, the record and journal say so,
and a later plan (through the revocations) keeps it closed. Real packets: tests/test_access_ends.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayctl.apply import revocations
from gatewayctl.apply.engine import element_grants, grant_ends, prepare
from gatewayctl.apply.revoke import revoke
from gatewayctl.host.errors import HostError
from gatewayctl.host.fake import FakeHost
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.spec import spec_to_json
from gatewayctl.state import StateDir
from tests.test_apply_engine import AT_DT, ENV, apply, estate, policy_of  # noqa: F401 - estate is a fixture

ACME_CRM = "10.250.1.1 . 10.1.0.5 . tcp . 443"
ACME_SFTP = "10.250.1.1 . 10.1.0.20 . tcp . 22"


def applied_host(root: Path, state: StateDir) -> FakeHost:
    host = FakeHost()
    policy = policy_of(root)
    prep = apply(policy, host)
    record = spec_to_json(prep.desired)
    record.update(element_grants=element_grants(policy), grant_ends=grant_ends(policy))
    state.write_json("applied.json", record)
    return host


def elements(host: FakeHost, name: str, keys: list[str]) -> frozenset[str]:
    return host.nft_get_elements("gatewayctl", name, keys)


def test_revoke_removes_only_the_revoked_grant_and_records_it(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    state = StateDir(tmp_path / "state")
    host = applied_host(estate, state)
    assert elements(host, "grants4", [ACME_CRM, ACME_SFTP]) == {ACME_CRM, ACME_SFTP}
    result = revoke(host, state, "acme", "crm-api", "INC-7")
    assert result.elements == 1
    assert elements(host, "grants4", [ACME_CRM, ACME_SFTP]) == {ACME_SFTP}
    record = state.read_json("applied.json") or {}
    assert ACME_CRM not in record["table"]["sets"]["grants4"]["elements"]
    assert [r.label for r in revocations.load(state)] == ["acme/crm-api"]
    assert state.read_journal()[-1]["event"] == "revoked" and state.read_journal()[-1]["reason"] == "INC-7"
    # a later plan through the revocations keeps it closed: nothing to add back
    standing, _ = revocations.still_granted(revocations.load(state), policy_of(estate))
    policy = revocations.restrict(policy_of(estate), standing)
    plan = prepare(policy, host, ENV, Secrets(), AT_DT, {}).plan
    assert not any(ACME_CRM in keys for keys in plan.nft_add.values()), plan.nft_add


def test_revoke_refuses_what_is_not_on_this_gateway(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    state = StateDir(tmp_path / "state")
    host = applied_host(estate, state)
    with pytest.raises(HostError, match="no peer on this gateway"):
        revoke(host, state, "nobody", None, "x")
    with pytest.raises(HostError, match="no grant of service 'erp-db'"):
        revoke(host, state, "acme", "erp-db", "x")
    assert revocations.load(state) == []


def test_revocations_end_when_the_profiles_no_longer_grant(estate: Path) -> None:  # noqa: F811
    gone = revocations.Revocation("acme", "no-such-service", "r", "u", "t")
    kept = revocations.Revocation("acme", "crm-api", "r", "u", "t")
    standing, ended = revocations.still_granted([gone, kept], policy_of(estate))
    assert standing == [kept] and ended == [gone]


OVERLAPPING = """  ov-a:
    description: Overlap test, a network and a port range.
    owner: Test <t@example.com>
    classification: internal
    addresses: [10.2.1.0/29]
    protocol: tcp
    ports: ["8000-8010"]
  ov-b:
    description: Overlap test, one host of it and a wider range.
    owner: Test <t@example.com>
    classification: internal
    addresses: [10.2.1.3/32]
    protocol: tcp
    ports: ["8005-8020"]
"""


def test_revoking_both_of_two_overlapping_grants_closes_their_shared_piece(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    (estate / "services.yaml").write_text((estate / "services.yaml").read_text() + OVERLAPPING)
    path = estate / "partners" / "globex.yaml"
    text = path.read_text().replace("grants:\n", "grants:\n  - service: ov-a\n    justification: Overlap test.\n"
                                    "    approved_by: Test Owner\n  - service: ov-b\n    justification: Overlap test.\n"
                                    "    approved_by: Test Owner\n", 1)
    path.write_text(text)
    state = StateDir(tmp_path / "state")
    host = applied_host(estate, state)
    shared = "10.250.2.1 . 10.2.1.3 . tcp . 8005-8010"  # both grants cover it (the pieces are disjoint)
    assert elements(host, "ranges4", [shared]) == {shared}
    revoke(host, state, "globex", "ov-b", "first")
    assert elements(host, "ranges4", [shared]) == {shared}  # ov-a still holds it
    revoke(host, state, "globex", "ov-a", "second")
    assert elements(host, "ranges4", [shared]) == frozenset()


def test_revoke_stands_and_says_so_when_open_connections_cannot_be_ended(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    state = StateDir(tmp_path / "state")
    host = applied_host(estate, state)
    host.fail_next["conntrack_list"] = "conntrack netlink refused"
    result = revoke(host, state, "acme", "crm-api", "INC-8")
    assert result.flows == 0 and result.flows_error == "conntrack netlink refused"
    assert elements(host, "grants4", [ACME_CRM, ACME_SFTP]) == {ACME_SFTP}  # the access is closed all the same
    assert [r.label for r in revocations.load(state)] == ["acme/crm-api"]
    entry = state.read_journal()[-1]
    assert entry["event"] == "revoked" and entry["flows_error"] == "conntrack netlink refused"
