"""The compliance report without a gateway (--offline): formats, controls, mapping, partner reports,
and the HTML in real headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gatewayctl.loader.yaml12 import read_document
from gatewayctl.synth import write_estate
from tests.conftest import run_cli

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "report.schema.json").read_text())
CONTROLS = 23


def report(estate: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("--profiles", str(estate), "report", "--offline", "--state-dir", str(estate.parent / "state"), *args)
    return result.exit_code, result.stdout, result.stderr


def as_json(estate: Path, *args: str) -> dict[str, Any]:
    code, out, err = report(estate, "--format", "json", *args)
    assert code in (0, 1), err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    return dict(doc)


def test_json_report_is_versioned_and_valid(estate: Path) -> None:
    doc = as_json(estate)
    assert doc["format"] == "gatewayctl-report/1"
    assert len(doc["controls"]) == CONTROLS
    assert {c["framework"] for c in doc["controls"]} == {"pci-dss-4.0", "nist-800-53r5", "iso-27001-2022"}
    assert {c["id"] for c in doc["controls"]} >= {"1.2.5", "1.2.7", "1.2.8", "1.3.1", "1.3.2", "1.4.2", "8.2.7", "8.4.3",
                                                   "SC-7(5)", "SC-7(4)", "AC-17", "AC-20", "CA-3", "IA-2(12)", "IA-5(2)",
                                                   "CM-3", "A.5.19", "A.5.20", "A.5.21", "A.5.22", "A.8.20", "A.8.21", "A.8.22"}
    checks = {c["id"]: c for c in doc["checks"]}
    # globex reaches restricted data, whose stage wants a smart card, and nothing enforces it at the gateway
    assert checks["strong-authentication"]["status"] == "fail"
    assert "globex: smart-card requirements declared but not enforced" in checks["strong-authentication"]["evidence"][0]
    assert "PCI DSS v4.0 8.4.3" in checks["strong-authentication"]["controls"]
    # offline: what needs the live gateway is not evidenced, and says why
    assert checks["live-matches-approved"]["status"] == "not-evidenced"
    assert "--offline" in checks["live-matches-approved"]["detail"]
    assert checks["policy-tests-pass"]["status"] == "pass" and checks["grants-justified"]["status"] == "pass"
    acme = next(p for p in doc["partners"] if p["id"] == "acme")
    grant = next(g for g in acme["grants"] if g["id"] == "acme/crm-api")
    assert grant["justification"] and grant["approved_by"] and grant["ends_at"]
    initech = next(p for p in doc["partners"] if p["id"] == "initech")
    assert any(not g["in_force"] and "expired" in g["reason"] for g in initech["grants"])
    assert doc["summary"]["controls"]["fail"] == sum(1 for c in doc["controls"] if c["status"] == "fail") > 0


def test_exit_status_follows_the_controls(estate: Path) -> None:
    code, _, err = report(estate, "--format", "json")
    assert code == 1, err  # strong authentication fails
    path = estate / "partners" / "globex.yaml"
    text = path.read_text()
    start = text.index("  - service: erp-db")
    path.write_text(text[:start] + text[text.index("  - service: crm-api"):])  # no more restricted data for globex
    code, out, err = report(estate, "--format", "json")
    assert code == 0, [c for c in json.loads(out)["checks"] if c["status"] == "fail"]
    path.write_text("id: [broken\n")
    code, _, err = report(estate)
    assert code == 2 and "globex.yaml:2: YAML syntax error" in err


def test_a_check_fails_for_the_right_reason(estate: Path) -> None:
    path = estate / "partners" / "acme.yaml"
    path.write_text(path.read_text().replace("review_by: 2027-06-30", "review_by: 2026-01-31"))
    doc = as_json(estate)
    check = next(c for c in doc["checks"] if c["id"] == "reviews-current")
    assert check["status"] == "fail" and check["evidence"] == ["acme: review due 2026-01-31"]
    assert next(c for c in doc["controls"] if c["id"] == "1.2.7")["status"] == "fail"


def test_markdown_junit_and_prometheus(estate: Path, tmp_path: Path) -> None:
    code, out, _ = report(estate, "--format", "markdown")
    assert code == 1 and out.startswith("# Compliance report: gateway gw-fra-1")
    assert "| PCI DSS v4.0 | 8.4.3 |" in out and "| acme | established | acme/crm-api |" in out
    code, _, err = report(estate, "-o", str(tmp_path / "controls.xml"))
    assert code == 1, err
    root = ET.parse(tmp_path / "controls.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == CONTROLS
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert "8.4.3 MFA is implemented for all remote network access originating from outside the entity's network" in failed
    assert root.get("failures") == str(len(failed)) and root.get("skipped") == str(len(skipped))
    code, out, _ = report(estate, "--format", "prometheus")
    samples = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r'[a-z_]+\{[^}]*\} -?\d+', s) for s in samples), samples
    assert 'gatewayctl_report_control{gateway="gw-fra-1",framework="pci-dss-4.0",control="8.4.3",status="fail"} 1' in samples


def test_the_control_mapping_can_be_replaced(estate: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "controls.yaml"
    mapping.write_text("version: 1\nframeworks: {internal: Our policy}\ncontrols:\n"
                       "  - {framework: internal, id: NET-1, title: Partner access reviewed, checks: [reviews-current]}\n")
    doc = as_json(estate, "--controls", str(mapping))
    assert [(c["id"], c["status"]) for c in doc["controls"]] == [("NET-1", "pass")]
    assert next(c for c in doc["checks"] if c["id"] == "reviews-current")["controls"] == ["Our policy NET-1"]
    mapping.write_text("version: 1\nframeworks: {internal: Our policy}\ncontrols:\n"
                       "  - {framework: internal, id: NET-1, title: x, checks: [reviews-current]}\n"
                       "  - {framework: internal, id: NET-2, title: y, checks: [no-such-check]}\n")
    code, _, err = report(estate, "--controls", str(mapping))
    assert code == 2 and f"{mapping}:5" in err and "no-such-check" in err, err


def _others(estate: Path, partner: str) -> list[str]:
    """Every name, address, key, contact and reference of the partners other than `partner`."""
    tokens: list[str] = []
    for path in (estate / "partners").glob("*.yaml"):
        doc = read_document(path, path.name).data
        if doc["id"] == partner:
            continue
        tokens += [doc["id"], doc["name"], doc["agreement"]["reference"]]
        tokens += [c["email"] for c in doc["contacts"]] + [c["name"] for c in doc["contacts"]]
        for peer in doc["peers"]:
            tokens += [peer["public_key"], peer["name"]]
            tokens += [a.split("/")[0] for a in peer["addresses"] + peer.get("networks", [])]
    return tokens


@pytest.mark.parametrize("partner", ["acme", "globex", "initech", "umbrella"])
def test_partner_report_shows_nothing_of_other_partners(estate: Path, tmp_path: Path, partner: str) -> None:
    for fmt in ("html", "markdown", "json", "junit"):
        out = tmp_path / f"{partner}.{fmt}"
        code, _, err = report(estate, "--partner", partner, "--format", fmt, "-o", str(out))
        assert code in (0, 1), err
        text = out.read_text()
        assert partner in text
        leaked = [t for t in _others(estate, partner) if t in text]
        assert not leaked, (fmt, leaked)
    doc = as_json(estate, "--partner", partner)
    assert [p["id"] for p in doc["partners"]] == [partner] and doc["journal"] is None
    assert all(t["partner"] == partner for t in doc["policy_tests"])


def test_partner_report_of_an_unknown_partner(estate: Path) -> None:
    code, _, err = report(estate, "--partner", "nobody")
    assert code == 2 and "no partner 'nobody'" in err


CHROMIUM = "/usr/bin/chromium"


def chromium_render(page_path: Path, shot: Path, interact: Any = None) -> dict[str, Any]:
    """Open the page in headless Chromium: console messages, page errors, requests, a full-page screenshot."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: ./setup.sh installs it (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {"console": [], "errors": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            page.screenshot(path=str(shot), full_page=True)
            if interact:
                seen["interaction"] = interact(page)
        finally:
            browser.close()
    return seen


def non_blank(shot: Path) -> int:
    """How many distinct colours the screenshot has (a blank page has one)."""
    from PIL import Image

    with Image.open(io.BytesIO(shot.read_bytes())) as image:
        small = image.convert("RGB").resize((200, 400))
        return len(small.getcolors(maxcolors=200 * 400) or [])


def test_html_renders_in_headless_chromium(estate: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _, err = report(estate, "-o", str(page))
    assert code == 1, err

    def filter_matrix(p: Any) -> dict[str, int]:
        before = p.locator("#matrix-table tbody tr:visible").count()
        p.fill('.tools[data-for="matrix-table"] input', "globex")
        return {"before": before, "after": p.locator("#matrix-table tbody tr:visible").count()}

    seen = chromium_render(page, tmp_path / "report.png", filter_matrix)
    assert seen["errors"] == [] and [m for m in seen["console"] if m.startswith(("error", "warning"))] == []
    assert seen["requests"] == [page.as_uri()]  # no other request: nothing external, nothing fetched
    assert non_blank(tmp_path / "report.png") > 20
    assert seen["interaction"] == {"before": 4, "after": 1}
    text = page.read_text()
    assert "<svg" in text and 'id="matrix-table"' in text and "http://" not in text.replace("http://unix", "")


def test_a_thousand_partners_stay_usable(tmp_path: Path) -> None:
    root = tmp_path / "big"
    write_estate(root, 1000)
    shutil.rmtree(root / "tests", ignore_errors=True)
    page = tmp_path / "big.html"
    code, _, err = report(root, "-o", str(page))
    assert code in (0, 1), err

    def pages(p: Any) -> dict[str, Any]:
        visible = p.locator("#matrix-table tbody tr:visible").count()
        p.click('#matrix-table + .tools button:has-text("next")')
        label = p.locator("#matrix-table + .tools span").inner_text()
        return {"visible": visible, "label": label.strip()}

    seen = chromium_render(page, tmp_path / "big.png", pages)
    assert seen["errors"] == [] and seen["requests"] == [page.as_uri()]
    assert seen["interaction"]["visible"] == 50  # paginated: 50 partners a page
    assert seen["interaction"]["label"] == "page 2 of 20 (1000 shown)"
    assert non_blank(tmp_path / "big.png") > 20


def test_revocations_in_force_are_listed(estate: Path) -> None:
    state = estate.parent / "state"
    state.mkdir(exist_ok=True)
    (state / "revocations.json").write_text(json.dumps({"revocations": [
        {"partner": "acme", "service": "crm-api", "reason": "INC-9 key leaked", "by": "alice", "at": "2026-11-30T10:00:00Z"}]}))
    doc = as_json(estate)
    assert doc["revocations"] == [{"partner": "acme", "service": "crm-api", "reason": "INC-9 key leaked", "by": "alice",
                                   "at": "2026-11-30T10:00:00Z"}]
    assert as_json(estate, "--partner", "umbrella")["revocations"] == []
    _, markdown, _ = report(estate, "--format", "markdown")
    assert "acme/crm\\-api: revoked by alice" in markdown or "acme/crm-api: revoked by alice" in markdown, markdown
