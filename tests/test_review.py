"""`gatewayctl diff` on real git repositories made in temporary folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gatewayctl.review.compare import Change
from gatewayctl.review.formats import markdown
from gatewayctl.review.review import Review
from tests.conftest import AT, PROFILES, run_cli


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.profiles = root / "profiles"

    def commit(self, message: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", message)

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.profiles / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))

    def diff(self, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        result = run_cli("--profiles", str(self.profiles), "diff", "--format", "json", "--at", AT, *args)
        assert result.exit_code in (0, 1), result.stderr
        return result.exit_code, json.loads(result.stdout)


def new_repo(tmp_path: Path) -> Repo:
    """A git repository holding a copy of the example estate, nothing committed yet."""
    root = tmp_path / "estate"
    root.mkdir()
    shutil.copytree(PROFILES, root / "profiles")
    git(root, "init", "-q")
    return Repo(root)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = new_repo(tmp_path)
    r.commit("base")
    return r


def kinds(data: dict) -> set[tuple[str, str, bool]]:  # type: ignore[type-arg]
    return {(c["partner"], c["kind"], bool(c["risk"])) for c in data["changes"]}


CHANGES = [
    ("grant added (internal)", [("partners/acme.yaml", "  - service: lab-ping", "  - service: dns\n    justification: DNS\n"
                                 "    approved_by: Tom Becker (service owner)\n    expires: 2027-06-30\n  - service: lab-ping")],
     {("acme", "flow-added", False)}),
    ("grant of confidential data added", [("partners/umbrella.yaml", "  - service: dns", "  - service: crm-api\n    justification: "
                                           "CRM\n    approved_by: Tom Becker (service owner)\n    expires: 2027-04-30\n  - service: dns"),
                                          # stage established needs a preshared key for confidential data (GW104)
                                          ("partners/umbrella.yaml", "    keepalive: 25", "    keepalive: 25\n    preshared_key_file: "
                                           "/etc/gatewayctl/psk/umbrella-london.psk"),
                                          ("partners/umbrella.yaml", '"fd00:250::4:2/128"]',
                                           '"fd00:250::4:2/128"]\n    preshared_key_file: /etc/gatewayctl/psk/umbrella-raccoon.psk')],
     {("umbrella", "flow-added", True)}),
    ("grant removed", [("partners/acme.yaml", "  - service: edi-sftp", "  - service: crm-api")], None),
    ("ports widened", [("partners/globex.yaml", 'ports: ["8000-8003"]', 'ports: ["8000-8005"]')], {("globex", "flow-widened", True)}),
    ("ports narrowed", [("partners/globex.yaml", 'ports: ["8000-8003"]', 'ports: ["8000-8001"]')], {("globex", "flow-narrowed", False)}),
    ("network enlarged", [("services.yaml", "addresses: [10.1.0.5/32]", "addresses: [10.1.0.0/28]")],
     {("acme", "flow-widened", True), ("globex", "flow-widened", True)}),
    ("stage raised", [("partners/initech.yaml", "stage: pilot", "stage: established")], {("initech", "stage-changed", True)}),
    ("stage lowered", [("partners/umbrella.yaml", "stage: established", "stage: strategic"),
                       ("partners/acme.yaml", "stage: established", "stage: pilot")], None),
    ("key rotated", [("partners/initech.yaml", "YmRKylJgVl1SvrThguWkAnSu5nWCEmrwpfWM3YSe1RE=",
                      "mA9ltJmdlOqkqMl2bUt1zlYYkbHsCTEcMZ6uLzCq1m8=")], {("initech", "key-rotated", True)}),
    ("peer removed", [("partners/umbrella.yaml", "  - name: umbrella-raccoon", "  - name: umbrella-raccoon-gone")],
     {("umbrella", "peer-added", True), ("umbrella", "peer-removed", False)}),
    ("smart card requirement weakened", [("partners/globex.yaml", "smartcard_required: true", "smartcard_required: false")],
     {("globex", "certificates-changed", True)}),
    ("expiry pushed out", [("partners/acme.yaml", "    expires: 2027-03-31", "    expires: 2027-06-30")],
     {("acme", "expiry-moved", True)}),
    ("expiry brought forward", [("partners/acme.yaml", "    expires: 2027-03-31", "    expires: 2027-01-31")],
     {("acme", "expiry-moved", False)}),
    # globex: acme's agreement runs past its stage's 365 days, so a grant there without expiry would not be compiled
    ("expiry removed", [("partners/globex.yaml", "    expires: 2027-09-30\n", "")], {("globex", "expiry-removed", True)}),
    ("agreement extended", [("partners/initech.yaml", "  expires: 2027-02-28", "  expires: 2027-05-31")],
     {("initech", "agreement-changed", True)}),
]


@pytest.mark.parametrize(("what", "edits", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_kind_of_change(repo: Repo, what: str, edits: list[tuple[str, str, str]],
                             expected: set[tuple[str, str, bool]] | None) -> None:
    for rel, old, new in edits:
        repo.edit(rel, old, new)
    repo.commit(what)
    code, data = repo.diff("--base", "HEAD~1", "--head", "HEAD")
    assert code == 1
    found = kinds(data)
    if expected:
        assert expected <= found, found
    assert data["summary"]["risky"] == sum(bool(c["risk"]) for c in data["changes"]) + len(data["lint_errors_introduced"])


def test_grant_removed_and_stage_lowered_are_not_risky(repo: Repo) -> None:
    repo.edit("partners/acme.yaml", "stage: established", "stage: pilot")
    repo.edit("partners/globex.yaml", "  - service: crm-api\n    justification: Joint customer onboarding.\n"
              "    approved_by: Maria Lopez (CISO delegate)\n    expires: 2027-09-30\n", "")
    repo.commit("less")
    _, data = repo.diff("--base", "HEAD~1")
    assert ("acme", "stage-changed", False) in kinds(data)
    assert ("globex", "flow-removed", False) in kinds(data)


def test_partner_added_and_removed(repo: Repo) -> None:
    hooli = (repo.profiles / "partners" / "initech.yaml").read_text().replace("id: initech", "id: hooli").replace(
        "10.250.3.1/32", "10.250.9.1/32").replace("YmRKylJgVl1SvrThguWkAnSu5nWCEmrwpfWM3YSe1RE=",
                                                  "mA9ltJmdlOqkqMl2bUt1zlYYkbHsCTEcMZ6uLzCq1m8=")
    (repo.profiles / "partners" / "hooli.yaml").write_text(hooli)
    (repo.profiles / "partners" / "umbrella.yaml").unlink()
    repo.commit("hooli in, umbrella out")
    _, data = repo.diff("--base", "HEAD~1")
    found = kinds(data)
    assert ("hooli", "partner-added", False) in found and ("hooli", "flow-added", False) in found
    assert ("umbrella", "partner-removed", False) in found and ("umbrella", "flow-removed", False) in found


def test_lint_error_introduced_is_a_risk(repo: Repo) -> None:
    repo.edit("partners/acme.yaml", "    justification: Partner portal for shipment tracking.\n", "")
    repo.commit("no justification")
    code, data = repo.diff("--base", "HEAD~1")
    assert code == 1
    assert data["lint_errors_introduced"] == ["GW301 grant of 'intranet-web' to partner 'acme' has no justification"]
    assert data["summary"]["risky"] == 1


def test_pure_reformat_and_reordering_show_no_change(repo: Repo) -> None:
    path = repo.profiles / "partners" / "acme.yaml"
    text = path.read_text()
    grants = text.split("grants:\n", 1)[1].split("  - service: ")[1:]
    reordered = text.split("grants:\n", 1)[0] + "grants:\n" + "".join("  - service: " + g for g in reversed(grants))
    path.write_text("# reformatted\n" + reordered.replace("expires: 2027-12-31", 'expires: "2027-12-31"'))
    repo.commit("reformat")
    code, data = repo.diff("--base", "HEAD~1")
    assert code == 0 and data["changes"] == []


def test_file_rename_shows_no_change(repo: Repo) -> None:
    (repo.profiles / "partners" / "eu").mkdir()
    git(repo.root, "mv", "profiles/partners/acme.yaml", "profiles/partners/eu/acme.yaml")
    repo.commit("move")
    code, data = repo.diff("--base", "HEAD~1")
    assert code == 0 and data["changes"] == []


def test_invalid_revision_is_named(repo: Repo) -> None:
    repo.edit("partners/acme.yaml", "  - service: crm-api", "  - service: crm-apx")
    repo.commit("broken")
    result = run_cli("--profiles", str(repo.profiles), "diff", "--base", "HEAD~1", "--head", "HEAD", "--at", AT)
    assert result.exit_code == 2
    assert "error: HEAD:profiles/partners/acme.yaml:23: grants[0].service: unknown service 'crm-apx'" in result.stderr
    missing = run_cli("--profiles", str(repo.profiles), "diff", "--base", "no-such-rev", "--at", AT)
    assert missing.exit_code == 2 and "git revision 'no-such-rev' not found" in missing.stderr


def test_working_tree_is_compared_and_left_untouched(repo: Repo) -> None:
    repo.edit("partners/globex.yaml", 'ports: ["8000-8003"]', 'ports: ["8000-8005"]')
    before = git(repo.root, "status", "--porcelain")
    content = (repo.profiles / "partners" / "globex.yaml").read_text()
    code, data = repo.diff("--base", "HEAD")
    assert code == 1 and data["head"] == "working tree"
    assert git(repo.root, "status", "--porcelain") == before
    assert (repo.profiles / "partners" / "globex.yaml").read_text() == content


def test_diff_across_two_hundred_commits(repo: Repo) -> None:
    path = repo.profiles / "partners" / "acme.yaml"
    for n in range(200):
        path.write_text(path.read_text().replace(f"review_by: 2027-06-{(n % 28) + 1:02d}" if n else "review_by: 2027-06-30",
                                                 f"review_by: 2027-06-{((n + 1) % 28) + 1:02d}"))
        repo.commit(f"review date {n}")
    repo.edit("partners/globex.yaml", 'ports: ["8000-8003"]', 'ports: ["8000-8002"]')
    repo.commit("narrow")
    code, data = repo.diff("--base", "HEAD~201", "--head", "HEAD")
    assert code == 1
    assert kinds(data) == {("globex", "flow-narrowed", False)}


def test_markdown_stays_under_the_comment_limit_with_a_notice() -> None:
    changes = tuple(Change(f"partner{i:04d}", "flow-added", f"10.1.{i // 250}.{i % 250}/32 tcp",
                           "x" * 80, "new access to confidential data") for i in range(2000))
    text = markdown(Review("base", "head", changes, ()))
    assert len(text) <= 60000
    assert text.startswith("**gatewayctl**: 2000 access change(s) for 2000 partner(s)")
    assert "**Truncated**" in text and text.rstrip().endswith("</details>")


def test_revisions_are_extracted_in_memory_unless_tmpdir_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatewayctl.review.review import _scratch

    monkeypatch.delenv("TMPDIR", raising=False)
    assert _scratch() == ("/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None)
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    assert _scratch() is None  # the user's choice stands
