"""Exceptions are the gateway owners' to grant (issue 15.3) and stage ceilings hold at compile (issue 14.4).

Each test edits a copy of the example estate. The pilot partner initech has one peer (10.250.3.1)
and one grant in force, intranet-web (internal, until 2027-02-15); crm-api is confidential and
lives at 10.1.0.5 tcp/443. At 2026-12-01 the default exception limit (180 days) ends on 2027-05-30.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import AT, AT_DT, PROFILES, run_cli
from tests.test_invalid_cases import apply_case
from tests.test_lint_cases import prepare
from tests.test_review import Repo, kinds, new_repo

CISO = "Maria Lopez (CISO delegate)"
INITECH_CRM = "10.250.3.1 . 10.1.0.5 . tcp . 443"  # the set element a compiled initech/crm-api grant adds


def edit(estate: Path, rel: str, old: str, new: str) -> None:
    path = estate / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))


def gateway_exceptions(estate: Path, *entries: str, approvers: list[str] | None = None) -> None:
    """Give gateway.yaml lint.approvers (default: the CISO delegate) and these `exceptions:` entries."""
    names = ", ".join(approvers if approvers is not None else [CISO])
    block = f"lint:\n  approvers: [{names}]\n\nexceptions:\n" + "".join(f"  - {e}\n" for e in entries)
    edit(estate, "gateway.yaml", "deny_logging:", block + "\ndeny_logging:")


def crm_to_initech(estate: Path) -> None:
    """initech (pilot) asks for confidential crm-api instead of intranet-web: beyond its stage (GW102)."""
    edit(estate, "partners/initech.yaml", "  - service: intranet-web", "  - service: crm-api")


def lint(estate: Path, at: str = AT) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("--profiles", str(estate), "lint", "--format", "json", "--at", at)
    return result.exit_code, json.loads(result.stdout)["findings"]


def active(findings: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["code"] == code and not f["suppressed"]]


def ruleset(estate: Path, tmp_path: Path, at: str = AT) -> tuple[str, str]:
    """Build and return (the rendered nftables ruleset, build's stderr)."""
    out = tmp_path / "out"
    result = run_cli("--profiles", str(estate), "build", "-o", str(out), "--at", at)
    assert result.exit_code == 0, result.stderr
    return (out / "nftables" / "gatewayctl.nft").read_text(), result.stderr


def element_lines(nft: str, element: str) -> list[str]:
    return [line.strip() for line in nft.splitlines() if element in line]


# -- a partner's (or a service's) own file cannot lift stage, addressing, certificate or secret rules

LOCAL = ["GW101", "GW102", "GW103", "GW104", "GW105", "GW501", "GW502", "GW503", "GW504", "GW701", "GW706", "GW801",
         "classification-above-stage", "partner-address-overlaps-internal"]


@pytest.mark.parametrize("rule", LOCAL)
def test_partner_file_suppression_of_a_restricted_rule_is_refused(estate: Path, rule: str) -> None:
    path = estate / "partners" / "initech.yaml"
    original = path.read_text()
    path.write_text(original + f"suppressions:\n  - {{rule: {rule}, reason: we need it, expires: 2099-12-31}}\n")
    line = len(original.splitlines()) + 2  # the entry, under the `suppressions:` line appended at the end
    code, findings = lint(estate)
    assert code == 1
    refused = active(findings, "GW904")
    assert [(f["path"].endswith("partners/initech.yaml"), f["line"]) for f in refused] == [(True, line)]
    assert "gateway.yaml exceptions:" in refused[0]["message"] and "approved_by" in refused[0]["message"]
    assert "partner: initech" in refused[0]["message"]
    assert not any(f["code"] == "GW902" for f in findings)  # refused, not merely unused


def test_refused_suppression_lifts_nothing_and_the_grant_is_not_compiled(estate: Path, tmp_path: Path) -> None:
    """The attack of issue 15: a pilot partner suppresses its own stage ceiling until 2099."""
    crm_to_initech(estate)
    edit(estate, "partners/initech.yaml", "    expires: 2027-02-15",
         "    expires: 2027-02-15\n    suppressions:\n      - {rule: GW102, reason: we need it, expires: 2099-12-31}")
    code, findings = lint(estate)
    assert code == 1
    assert [f["line"] for f in active(findings, "GW102")] == [25]  # the grant's line: still an active error
    assert [f["line"] for f in active(findings, "GW904")] == [30]  # the suppression's line
    nft, stderr = ruleset(estate, tmp_path)
    assert element_lines(nft, INITECH_CRM) == []
    assert "grant of 'crm-api' to partner 'initech' NOT COMPILED, beyond stage 'pilot'" in stderr


def test_service_file_suppression_of_an_addressing_rule_is_refused(estate: Path) -> None:
    edit(estate, "services.yaml", "    ports: [22]",
         "    ports: [22]\n    suppressions:\n      - {rule: GW502, reason: x, expires: 2027-01-01}")
    _, findings = lint(estate)
    refused = active(findings, "GW904")
    assert len(refused) == 1 and refused[0]["path"].endswith("services.yaml")
    assert "addressing rules are excepted only by the gateway owners" in refused[0]["message"]
    assert "service: edi-sftp" in refused[0]["message"]


def test_other_rules_may_still_be_suppressed_locally(estate: Path) -> None:
    edit(estate, "services.yaml", "    ports: [22]",
         "    ports: [23]\n    suppressions:\n      - {rule: GW404, reason: Legacy EDI box, expires: 2027-01-31}")
    code, findings = lint(estate)
    assert code == 0
    assert [f["suppressed"] for f in findings if f["code"] == "GW404"] == [True]
    assert not active(findings, "GW904")


def test_nothing_lifts_a_secret_finding(estate: Path) -> None:
    prepare(estate, {"generate_secret": {"path": "ca/globex-issuing-ca.key", "kind": "pem"}}, AT_DT)
    gateway_exceptions(estate, f"{{rule: GW801, reason: test key, approved_by: {CISO}, expires: 2027-01-31}}")
    code, findings = lint(estate)
    assert code == 1 and len(active(findings, "GW801")) == 1 and len(active(findings, "GW902")) == 1


# -- gateway-owned exceptions: approved, short, and then they work

def test_gateway_exception_without_an_approver_is_bad_input(estate: Path) -> None:
    crm_to_initech(estate)
    gateway_exceptions(estate, "{rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot, expires: 2027-01-10}")
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2
    assert "gateway.yaml:46: exceptions[0].approved_by: required field is missing" in result.stderr


@pytest.mark.parametrize(("approvers", "approver", "expires", "code", "words"), [
    ([CISO], "Bob (Initech project lead)", "2027-01-10", "GW905", "who is not among gateway.yaml lint.approvers"),
    ([], CISO, "2027-01-10", "GW905", "lint.approvers is empty"),
    ([CISO], CISO, "2099-12-31", "GW906", "more than 180 days (lint.max_exception_days) after 2026-12-01"),
    ([CISO], CISO, "2027-05-31", "GW906", "more than 180 days"),
])
def test_refused_gateway_exception_lifts_nothing(estate: Path, tmp_path: Path, approvers: list[str], approver: str,
                                                 expires: str, code: str, words: str) -> None:
    crm_to_initech(estate)
    gateway_exceptions(estate, f"{{rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot, approved_by: {approver}, "
                       f"expires: {expires}}}", approvers=approvers)
    exit_code, findings = lint(estate)
    assert exit_code == 1
    refused = active(findings, code)
    assert len(refused) == 1 and refused[0]["path"].endswith("gateway.yaml") and refused[0]["line"] == 46
    assert words in refused[0]["message"]
    assert len(active(findings, "GW102")) == 1
    nft, stderr = ruleset(estate, tmp_path)
    assert element_lines(nft, INITECH_CRM) == []
    assert f"the exception is refused ({code}) and lifts nothing" in stderr


def test_approved_gateway_exception_lifts_the_ceiling_until_it_ends(estate: Path, tmp_path: Path) -> None:
    crm_to_initech(estate)
    gateway_exceptions(estate, f"{{rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot CHG-4711, "
                       f"approved_by: {CISO}, expires: 2027-01-10}}")
    code, findings = lint(estate)
    assert code == 0, [f["message"] for f in findings if f["severity"] == "error"]
    assert [(f["suppressed"], f["suppression_reason"]) for f in findings if f["code"] == "GW102"] == [(True, "CRM pilot CHG-4711")]
    nft, stderr = ruleset(estate, tmp_path)
    # the grant runs until 2027-02-15, the exception until 2027-01-10: the element ends with the exception,
    # at 2027-01-11 00:00 UTC, 41 days after 2026-12-01 00:00
    [line] = element_lines(nft, INITECH_CRM)
    assert "timeout 41d " in line and '"initech/crm-api"' in line
    assert "compiled beyond its stage under gateway exception: GW102 excepted by" in stderr
    # the day after the exception's last day the grant is left out again
    nft, _ = ruleset(estate, tmp_path, "2027-01-11")
    assert element_lines(nft, INITECH_CRM) == []
    _, findings = lint(estate, "2027-01-11")
    assert len(active(findings, "GW102")) == 1 and len(active(findings, "GW901")) == 1


def test_of_two_exceptions_for_one_grant_the_one_ending_first_decides(estate: Path, tmp_path: Path) -> None:
    crm_to_initech(estate)
    gateway_exceptions(estate, *(f"{{rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot, approved_by: {CISO}, "
                                 f"expires: {day}}}" for day in ("2027-01-20", "2027-01-10", "2027-01-31")))
    [line] = element_lines(ruleset(estate, tmp_path)[0], INITECH_CRM)
    assert "timeout 41d " in line  # until 2027-01-10 inclusive: 41 days from 2026-12-01


def test_exception_limit_is_configurable_with_a_hard_maximum(estate: Path) -> None:
    crm_to_initech(estate)
    gateway_exceptions(estate, f"{{rule: GW102, partner: initech, grant: crm-api, reason: CRM pilot, approved_by: {CISO}, "
                       "expires: 2027-05-31}")
    edit(estate, "gateway.yaml", "  approvers:", "  max_exception_days: 200\n  approvers:")
    code, findings = lint(estate)
    assert code == 0 and not active(findings, "GW906")
    edit(estate, "gateway.yaml", "max_exception_days: 200", "max_exception_days: 366")
    result = run_cli("--profiles", str(estate), "validate")
    assert result.exit_code == 2 and "lint.max_exception_days" in result.stderr


def test_exception_names_peers_and_later_grants_by_name(estate: Path, tmp_path: Path) -> None:
    """GW104 is a peer's finding; the exception names the peer. A second crm-api grant is crm-api#2."""
    edit(estate, "partners/acme.yaml", "    preshared_key_file: /etc/gatewayctl/psk/acme-hq.psk\n", "")
    nft, stderr = ruleset(estate, tmp_path)
    assert element_lines(nft, "10.250.1.1 . 10.1.0.5 . tcp . 443") == []  # acme's confidential crm-api needs a PSK
    assert "no preshared key, which the stage requires for confidential data (GW104)" in stderr
    gateway_exceptions(estate, f"{{rule: GW104, partner: acme, peer: acme-hq, reason: PSK rollout CHG-9, approved_by: {CISO}, "
                       "expires: 2027-01-31}")
    nft, _ = ruleset(estate, tmp_path)
    assert len(element_lines(nft, "10.250.1.1 . 10.1.0.5 . tcp . 443")) == 1
    _, findings = lint(estate)
    assert [f["suppressed"] for f in findings if f["code"] == "GW104"] == [True]


def test_second_grant_of_a_service_is_named_with_its_number(estate: Path) -> None:
    crm_to_initech(estate)
    edit(estate, "partners/initech.yaml", "  - service: status-page", "  - service: crm-api")
    gateway_exceptions(estate, f"{{rule: GW102, partner: initech, grant: crm-api#2, reason: CRM pilot, approved_by: {CISO}, "
                       "expires: 2027-01-31}")
    _, findings = lint(estate)
    gw102 = {f["line"]: f["suppressed"] for f in findings if f["code"] == "GW102"}
    assert gw102 == {21: False, 25: True}  # the first crm-api grant (line 21) is not excepted, the second is


def test_exception_naming_nothing_is_unused(estate: Path) -> None:
    gateway_exceptions(estate, f"{{rule: GW102, partner: initech, grant: crm-apii, reason: typo, approved_by: {CISO}, "
                       "expires: 2027-01-31}")
    _, findings = lint(estate)
    assert [f["line"] for f in active(findings, "GW902")] == [46]


# -- stage ceilings at compile: what lint calls beyond the stage is not compiled

CEILING_CASES = sorted((Path(__file__).parent / "cases" / "lint").glob("GW10[1-5].yaml"))


@pytest.mark.parametrize("case_file", CEILING_CASES, ids=[c.stem for c in CEILING_CASES])
def test_compile_leaves_out_what_the_stage_lint_case_triggers(case_file: Path, tmp_path: Path) -> None:
    import shutil

    from gatewayctl.pipeline import compile_profiles, parse_at

    case = yaml.safe_load(case_file.read_text())
    at = parse_at(str(case.get("at", AT)))
    tag = f"({case_file.stem})"
    for variant in ("clean", "trigger"):
        estate = tmp_path / variant
        shutil.copytree(PROFILES, estate)
        prepare(estate, case[variant] or {}, at)
        policy = compile_profiles(estate, at).policy
        left_out = [e for p in policy.partners for e in p.excluded if tag in e.reason]
        if variant == "clean":
            assert left_out == []
            continue
        assert left_out, case_file.stem
        for e in left_out:
            assert e.reason.startswith("beyond stage ")
            partner = policy.partner(e.partner)
            assert partner is not None and all(g.index != e.index for g in partner.grants)


def test_too_many_services_keeps_the_first_ones_in_file_order(estate: Path, tmp_path: Path) -> None:
    apply_case(estate, {"edit": {"partners/initech.yaml": [["  - service: status-page", "  - service: dns"],
                                                           ["    expires: 2026-10-31", "    expires: 2027-01-31"]]}})
    nft, stderr = ruleset(estate, tmp_path)
    assert element_lines(nft, "10.250.3.1 . 10.1.0.53 . udp . 53") != []  # dns, first in the file: compiled
    assert "10.250.3.1 . 10.1.0.10" not in nft  # intranet-web (10.1.0.10), second service of a 1-service stage: not
    assert "the stage allows 1 service(s) and dns come first in the file (GW101)" in stderr
    gateway_exceptions(estate, f"{{rule: GW101, partner: initech, reason: two services for the pilot, approved_by: {CISO}, "
                       "expires: 2027-01-31}")
    nft, _ = ruleset(estate, tmp_path)
    assert "10.250.3.1 . 10.1.0.10" in nft


def test_a_stage_with_only_a_classification_ceiling_still_holds(estate: Path, tmp_path: Path) -> None:
    """strategic reduced to a classification list (a repeated entry, no other ceiling): restricted erp-db is out."""
    assert ". 10.2.0.5 . tcp . 5432" in ruleset(estate, tmp_path)[0]  # as written, globex reaches erp-db
    edit(estate, "gateway.yaml", """    max_services: 10
    classifications: [public, internal, confidential, restricted]
    max_grant_days: 730
    preshared_key_for: [confidential, restricted]
    smartcard_for: [restricted]""", "    classifications: [public, internal, internal, confidential]")
    nft, stderr = ruleset(estate, tmp_path)
    assert "10.1.0.5 . tcp . 443" in nft  # globex's crm-api (confidential) is still compiled
    assert ". 10.2.0.5 . tcp . 5432" not in nft  # erp-db (restricted, 10.2.0.5 tcp/5432) is not
    assert "grant of 'erp-db' to partner 'globex' NOT COMPILED" in stderr


def test_query_explains_a_grant_beyond_its_stage(estate: Path) -> None:
    crm_to_initech(estate)
    result = run_cli("--profiles", str(estate), "query", "--from", "10.250.3.1", "--to", "10.1.0.5:443/tcp", "--at", AT)
    assert result.exit_code == 1
    assert "not in force: beyond stage 'pilot'" in result.stdout and "(GW102)" in result.stdout


# -- diff: every added, changed or extended suppression or exception needs a security reviewer

@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = new_repo(tmp_path)
    gateway_exceptions(r.profiles, f"{{rule: GW206, partner: acme, grant: lab-ping, reason: health checks, approved_by: {CISO}, "
                       "expires: 2027-01-31}")
    r.edit("services.yaml", "    ports: [22]",
           "    ports: [22]\n    suppressions:\n      - {rule: GW402, reason: whole lab subnet, expires: 2027-01-31}")
    r.commit("base")
    return r


def suppression_kinds(data: dict[str, Any]) -> set[tuple[str, str, bool]]:
    return {k for k in kinds(data) if k[1].startswith("suppression-")}


@pytest.mark.parametrize(("what", "edits", "expected"), [
    ("local suppression added", [("partners/acme.yaml", "    expires: 2027-06-30\n  - service: edi-sftp",
                                  "    expires: 2027-06-30\n    suppressions:\n      - {rule: GW601, reason: x, expires: 2027-01-31}\n"
                                  "  - service: edi-sftp")],
     {("acme", "suppression-added", True)}),
    ("gateway exception added", [("gateway.yaml", "exceptions:\n", "exceptions:\n  - {rule: GW102, partner: initech, grant: "
                                  f"intranet-web, reason: r, approved_by: {CISO}, expires: 2027-01-31}}\n")],
     {("initech", "suppression-added", True)}),
    ("exception extended", [("gateway.yaml", "health checks, approved_by: Maria Lopez (CISO delegate), expires: 2027-01-31",
                             "health checks, approved_by: Maria Lopez (CISO delegate), expires: 2027-03-31")],
     {("acme", "suppression-extended", True)}),
    ("local suppression extended", [("services.yaml", "whole lab subnet, expires: 2027-01-31", "whole lab subnet, expires: 2027-02-28")],
     {("", "suppression-extended", True)}),
    ("exception reason changed", [("gateway.yaml", "reason: health checks,", "reason: anything goes,")],
     {("acme", "suppression-changed", True)}),
    ("exception shortened", [("gateway.yaml", "approved_by: Maria Lopez (CISO delegate), expires: 2027-01-31",
                              "approved_by: Maria Lopez (CISO delegate), expires: 2026-12-31")],
     {("acme", "suppression-shortened", False)}),
    ("local suppression removed", [("services.yaml", "\n    suppressions:\n      - {rule: GW402, reason: whole lab subnet, "
                                    "expires: 2027-01-31}", "")],
     {("", "suppression-removed", False)}),
])
def test_diff_marks_every_added_changed_or_extended_suppression(repo: Repo, what: str, edits: list[tuple[str, str, str]],
                                                                 expected: set[tuple[str, str, bool]]) -> None:
    for rel, old, new in edits:
        repo.edit(rel, old, new)
    repo.commit(what)
    _, data = repo.diff("--base", "HEAD~1", "--head", "HEAD")
    assert suppression_kinds(data) == expected
    assert data["summary"]["risky"] >= sum(risky for _, _, risky in expected)


def test_diff_of_reordered_grants_shows_no_suppression_change(repo: Repo) -> None:
    path = repo.profiles / "partners" / "acme.yaml"
    text = path.read_text()
    head, body = text.split("grants:\n", 1)
    grants = body.split("  - service: ")[1:]
    path.write_text(head + "grants:\n" + "".join("  - service: " + g for g in reversed(grants)))
    repo.commit("reorder")
    _, data = repo.diff("--base", "HEAD~1", "--head", "HEAD")
    assert suppression_kinds(data) == set()


def test_diff_marks_a_longer_exception_limit(repo: Repo) -> None:
    repo.edit("gateway.yaml", "  approvers:", "  max_exception_days: 365\n  approvers:")
    repo.commit("longer")
    _, data = repo.diff("--base", "HEAD~1", "--head", "HEAD")
    assert ("", "gateway-changed", True) in kinds(data)
    assert any(c["subject"] == "lint.max_exception_days" and c["risk"] for c in data["changes"])
