"""Saved plans: `plan -o FILE` and `apply FILE` (Terraform's habit). The file lists every element and peer
with its before and after, holds no secret, is written 0600 and validates against the published schema;
apply carries it out only when the profiles and the host are as they were, and changes nothing otherwise.

Unit tests run on the fake host; the lab test runs a real gateway namespace (nftables, wireguard-go) and
decides with real packets. Expected flows come from the example estate: acme (10.250.1.1) is granted
crm-api (10.1.0.5 tcp 443); crm-ssh (10.1.0.5 tcp 22) is added by the test.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gatewayctl.apply.engine import Prepared, execute, prepare
from gatewayctl.host.fake import FakeHost
from gatewayctl.host.wgtypes import fingerprint
from gatewayctl.plan import saved
from gatewayctl.plan.savedfile import SavedPlan
from gatewayctl.plan.secrets import Secrets
from gatewayctl.plan.specdigest import digest
from gatewayctl.render.environment import make_environment
from tests.conftest import AT_DT, PROFILES, REPO
from tests.lab_helpers import LabHandle, running_lab
from tests.test_apply_engine import estate, policy_of  # noqa: F401 (estate is a fixture)

ENV = make_environment()
SCHEMA = json.loads((REPO / "docs" / "schemas" / "plan.schema.json").read_text())
ACME_CRM = "10.250.1.1 . 10.1.0.5 . tcp . 443"


def saved_of(root: Path, prep: Prepared) -> SavedPlan:
    pins = saved.make_pins(digest(prep.desired), prep.live, {"revision": None}, saved.profiles_digest(root))
    return saved.build(prep.plan, prep.desired, prep.live, prep.labels, prep.now, pins, prep.policy.gateway, "test")


def planned(root: Path, host: FakeHost) -> tuple[Prepared, SavedPlan]:
    prep = prepare(policy_of(root), host, ENV, Secrets(), AT_DT, {})
    return prep, saved_of(root, prep)


def secrets_in(folder: Path) -> list[str]:
    """Every key file's content, base64 and hex, as the plan file must never hold it."""
    found = []
    for path in [*folder.glob("*.key"), *folder.glob("*.psk")]:
        text = path.read_text().strip()
        found += [text, base64.b64decode(text).hex()]
    return found


def test_a_fresh_host_plan_lists_every_element_and_peer_and_fits_the_schema(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    _, plan = planned(estate, FakeHost())
    data = plan.model_dump(mode="json")
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    crm = [e for e in data["firewall"]["elements"] if e["element"] == ACME_CRM]
    assert crm == [{"set": "grants4", "element": ACME_CRM, "words": "10.250.1.1 -> 10.1.0.5 tcp/443", "partner": "acme",
                    "before": None, "after": crm[0]["after"]}], crm
    assert data["firewall"]["replace"] is True and data["operations"]["create_interface"] is True
    assert all(e["before"] is None and e["after"] is not None for e in data["firewall"]["elements"])
    assert all(c["before"] is None for c in data["firewall"]["chains"]) and data["firewall"]["chains"]
    peers = {p["label"]: p for p in data["peers"]}
    psk = base64.b64decode((tmp_path / "acme-hq.psk").read_text())
    assert peers["acme/acme-hq"]["before"] is None
    assert peers["acme/acme-hq"]["after"]["preshared_key"] == fingerprint(psk)
    assert peers["acme/acme-hq"]["after"]["allowed_ips"] == ["10.250.1.1/32"]
    text = json.dumps(data)
    assert not [s for s in secrets_in(tmp_path) if s in text]


def test_written_0600_and_read_back_the_same(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    _, plan = planned(estate, FakeHost())
    path = tmp_path / "plan.json"
    saved.write(path, plan)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved.read(path) == plan


def test_the_same_profiles_and_host_are_not_stale_and_every_change_is(estate: Path) -> None:  # noqa: F811
    host = FakeHost()
    prep, plan = planned(estate, host)
    assert saved.stale_reasons(plan, planned(estate, host)[1]) == []
    # a comment in a profile: the desired state is the same, the profiles are not
    partner = estate / "partners" / "acme.yaml"
    original = partner.read_text()
    partner.write_text("# reviewed again\n" + original)
    reasons = saved.stale_reasons(plan, planned(estate, host)[1])
    assert reasons == ["the profiles changed since (their content digest differs)"], reasons
    partner.write_text(original)
    # the plan applied: the host changed, and the plan made now does something else (nothing)
    execute(prep, host, ENV, Secrets())
    reasons = saved.stale_reasons(plan, planned(estate, host)[1])
    assert any("the host changed" in r for r in reasons) and any("different operations" in r for r in reasons), reasons


def test_the_host_digest_ignores_what_moves_by_itself_and_sees_an_element(estate: Path) -> None:  # noqa: F811
    host = FakeHost()
    prep, _ = planned(estate, host)
    execute(prep, host, ENV, Secrets())
    live = planned(estate, host)[0].live
    assert live.nft is not None and live.wg is not None
    grants = live.nft.sets["grants4"]
    moved = dataclasses.replace(live, nft=dataclasses.replace(live.nft, sets={
        **live.nft.sets, "grants4": dataclasses.replace(grants, expires={k: 5 for k in grants.elements},
                                                        counters={k: (9, 999) for k in grants.elements})}),
        wg=dataclasses.replace(live.wg, peers={k: dataclasses.replace(p, last_handshake=123, rx_bytes=77, tx_bytes=88)
                                               for k, p in live.wg.peers.items()}))
    assert saved.host_digest(moved) == saved.host_digest(live)
    extra = dataclasses.replace(live, nft=dataclasses.replace(live.nft, sets={
        **live.nft.sets, "grants4": dataclasses.replace(grants, elements=grants.elements | {"10.250.1.1 . 10.1.0.20 . tcp . 443"})}))
    assert saved.host_digest(extra) != saved.host_digest(live)


@pytest.mark.parametrize(("text", "named"), [
    ('{"format": "gatewayctl-saved-plan/1",\n  "pins": }', ":2: not JSON"),
    ('{"format": "gatewayctl-plan/1", "changes": []}', ":1: format must be 'gatewayctl-saved-plan/1'"),
    ("[1, 2]", "found 'list'"),
])
def test_a_file_that_is_not_a_saved_plan_is_named_with_its_line(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(saved.SavedPlanError, match=r"plan\.json") as info:
        saved.read(path)
    assert named in str(info.value), str(info.value)


def test_a_tampered_pin_is_refused_with_its_place_and_value(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    _, plan = planned(estate, FakeHost())
    data = plan.model_dump(mode="json")
    data["pins"]["host_digest"] = "not-a-digest"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(saved.SavedPlanError) as info:
        saved.read(path)
    assert "$.pins.host_digest" in str(info.value) and "'not-a-digest'" in str(info.value), str(info.value)


def test_published_plan_schema_is_current_and_check_jsonschema_reads_it(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    from gatewayctl.schema import schema_text
    from tests.test_jsonschema_tools import check_jsonschema

    published = REPO / "docs" / "schemas" / "plan.schema.json"
    assert published.read_text() == schema_text("plan"), "regenerate: gatewayctl schema --output-dir docs/schemas"
    assert check_jsonschema("--check-metaschema", published).returncode == 0
    _, plan = planned(estate, FakeHost())
    good, bad = tmp_path / "plan.json", tmp_path / "bad.json"
    saved.write(good, plan)
    data = plan.model_dump(mode="json")
    data["peers"][0]["after"]["preshared_key"] = base64.b64encode(b"k" * 32).decode()  # a key where a fingerprint goes
    bad.write_text(json.dumps(data))
    result = check_jsonschema("--schemafile", published, good)
    assert result.returncode == 0, result.stdout + result.stderr
    result = check_jsonschema("--schemafile", published, bad)
    assert result.returncode == 1 and "$.peers[0].after.preshared_key" in result.stdout, result.stdout


# --- a real gateway namespace, real packets ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("saved") / "lab", PROFILES) as handle:
        path = handle.profiles / "services.yaml"
        from gatewayctl.loader.yaml12 import read_document

        doc = read_document(path, path.name).data
        doc["services"]["crm-ssh"] = {"description": "Saved plan test.", "owner": "Test <t@example.com>",
                                      "classification": "internal", "addresses": ["10.1.0.5/32"], "protocol": "tcp",
                                      "ports": [22]}
        path.write_text(json.dumps(doc, indent=1))
        assert handle.ctl("apply", "--yes").returncode == 0
        yield handle


def grant_ssh(doc: dict[str, Any]) -> None:
    doc["stage"] = "strategic"
    doc["grants"].append({"service": "crm-ssh", "justification": "Saved plan test (CHG-7).", "approved_by": "Test Owner",
                          "expires": "2027-06-30"})


def table(lab: LabHandle) -> str:
    """gatewayctl's table as listed, the timers counting down left out."""
    return re.sub(r" expires [0-9dhms]+", "", lab.gw_run("nft", "list", "table", "inet", "gatewayctl"))


def test_saved_plan_applies_exactly_and_is_refused_when_profiles_or_host_changed(lab: LabHandle, tmp_path: Path) -> None:
    assert lab.eventually_reach("acme", "10.1.0.5", 443)
    acme = lab.profiles / "partners" / "acme.yaml"
    original = acme.read_text()
    doc = json.loads(original)
    grant_ssh(doc)
    acme.write_text(json.dumps(doc, indent=1))
    plan_file = tmp_path / "plan.json"
    ssh = "10.250.1.1 . 10.1.0.5 . tcp . 22"
    try:
        made = lab.ctl("plan", "-o", str(plan_file))
        assert made.returncode == 1, made.stdout + made.stderr  # changes pending
        assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600
        data = json.loads(plan_file.read_text())
        jsonschema.Draft202012Validator(SCHEMA).validate(data)
        added = [e for e in data["firewall"]["elements"] if e["element"] == ssh]
        assert len(added) == 1 and added[0]["before"] is None and added[0]["partner"] == "acme", added
        assert not [s for s in secrets_in(lab.root / "keys") if s in plan_file.read_text()]

        # the host changed after planning: an element added by hand
        hand = "10.250.1.1 . 10.1.0.20 . tcp . 443"
        lab.gw_run("nft", "add", "element", "inet", "gatewayctl", "grants4", "{ " + hand + " }")
        before = table(lab)
        refused = lab.ctl("apply", str(plan_file))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "refusing to apply the saved plan" in refused.stderr and "the host changed" in refused.stderr, refused.stderr
        assert table(lab) == before and not lab.reach("acme", "10.1.0.5", 22)  # nothing applied
        lab.gw_run("nft", "delete", "element", "inet", "gatewayctl", "grants4", "{ " + hand + " }")

        # the profiles changed after planning (a comment only: the desired state is the same)
        assert lab.ctl("plan", "-o", str(plan_file)).returncode == 1
        acme.write_text("# reviewed\n" + acme.read_text())
        before = table(lab)
        refused = lab.ctl("apply", str(plan_file))
        assert refused.returncode == 2 and "the profiles changed" in refused.stderr, refused.stdout + refused.stderr
        assert "desired state differs" not in refused.stderr, refused.stderr
        assert table(lab) == before and not lab.reach("acme", "10.1.0.5", 22)

        # planned again from these profiles on this host: applied without a question, real packets pass
        assert lab.ctl("plan", "-o", str(plan_file)).returncode == 1
        done = lab.ctl("apply", str(plan_file))
        assert done.returncode == 0, done.stdout + done.stderr
        assert lab.reach("acme", "10.1.0.5", 22) and lab.reach("acme", "10.1.0.5", 443)
        assert not lab.reach("acme", "10.1.0.20", 443)  # granted host, ungranted port: never
        journal = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
        applied = [e for e in journal if e["event"] == "applied"][-1]
        assert applied["saved_plan"] == str(plan_file) and journal.index(applied) > len(journal) - 4, journal[-3:]
        assert lab.ctl("drift").returncode == 0

        # the same plan a second time: the host is no longer what it was planned against
        again = lab.ctl("apply", str(plan_file))
        assert again.returncode == 2 and "the host changed" in again.stderr, again.stdout + again.stderr
    finally:
        acme.write_text(original)
        assert lab.ctl("apply", "--yes").returncode == 0
    assert not lab.reach("acme", "10.1.0.5", 22)


def test_a_blocked_plan_is_not_saved_and_a_bad_file_is_refused(lab: LabHandle, tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"format": "gatewayctl-plan/1"}')
    before = table(lab)
    result = lab.ctl("apply", str(bad))
    assert result.returncode == 2 and f"{bad}:1: format must be" in result.stderr, result.stderr
    assert table(lab) == before
    result = lab.ctl("apply", str(bad), "--at", "2030-01-01T00:00:00Z")
    assert result.returncode == 2 and "takes no --at" in result.stderr, result.stderr
    lab.gw_run("sysctl", "-qw", "net.ipv4.ip_forward=0")
    try:
        blocked = tmp_path / "blocked.json"
        result = lab.ctl("plan", "-o", str(blocked))
        assert result.returncode == 2 and "not saving the plan" in result.stderr, result.stderr
        assert not blocked.exists()
    finally:
        lab.gw_run("sysctl", "-qw", "net.ipv4.ip_forward=1")
