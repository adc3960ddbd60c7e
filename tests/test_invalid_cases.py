"""Data-driven: each tests/cases/invalid/*.yaml edits a copy of the example estate and lists
the errors `gatewayctl validate` must report (as substrings of `path:line: message` lines).

Case keys: description; edit: {file: [[old, new], ...]} (each old must occur);
write: {file: text}; remove: [file]; expect: [substring, ...]; expect_exit (default 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import AT, run_cli

CASES = sorted((Path(__file__).parent / "cases" / "invalid").glob("*.yaml"))


def apply_case(estate: Path, case: dict[str, object]) -> None:
    for rel, edits in (case.get("edit") or {}).items():  # type: ignore[attr-defined]
        path = estate / rel
        text = path.read_text()
        for old, new in edits:
            assert old in text, f"case edit target {old!r} not found in {rel}"
            text = text.replace(old, new, 1)
        path.write_text(text)
    for rel, text in (case.get("write") or {}).items():  # type: ignore[attr-defined]
        (estate / rel).parent.mkdir(parents=True, exist_ok=True)
        (estate / rel).write_text(text)
    for rel in case.get("remove") or []:  # type: ignore[attr-defined]
        (estate / rel).unlink()


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_invalid_case(case_file: Path, estate: Path) -> None:
    case = yaml.safe_load(case_file.read_text())
    apply_case(estate, case)
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    output = result.stderr.replace(str(estate) + "/", "profiles/")
    assert result.exit_code == case.get("expect_exit", 2), output
    for expected in case["expect"]:
        assert expected in output, f"missing {expected!r} in:\n{output}"
    if result.exit_code == 2:
        assert "nothing was built or changed" in output


def test_every_error_is_collected_across_files(estate: Path) -> None:
    """Problems in three files are all reported in one run, sorted by file and line."""
    (estate / "partners/acme.yaml").write_text((estate / "partners/acme.yaml").read_text().replace("crm-api", "crm-apx"))
    (estate / "partners/initech.yaml").write_text((estate / "partners/initech.yaml").read_text().replace("pilot\n", "pilo\n"))
    umbrella = estate / "partners/umbrella.yaml"
    umbrella.write_text(umbrella.read_text().replace("keepalive: 25", "keepalive: 0"))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2
    assert len(errors) == 3, result.stderr
    assert any("acme.yaml" in e and "unknown service 'crm-apx'" in e for e in errors)
    assert any("initech.yaml:5:" in e and "unknown stage 'pilo'" in e for e in errors)
    assert any("umbrella.yaml:21:" in e and "peers[0].keepalive: Input should be greater than or equal to 1" in e
               for e in errors)
