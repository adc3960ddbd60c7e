"""Hostile files and folders (issue 15, points 5, 6, 7, 9 and 10): output written through links, input
read through links, FIFOs and devices, dates past what nftables can hold, deep nesting, bidi and
line-separator characters in free text, unexpected exceptions, and a swappable template cache."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AT, run_cli
from tests.netns import sh


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of `path` containing `needle` (from the test's own data)."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def program(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """gatewayctl as its own process, as CI runs it."""
    return subprocess.run([sys.executable, "-m", "gatewayctl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, check=False)


# --- 9: dates every accepted value of which loads into nft -------------------------------------------------


@pytest.mark.parametrize("command", [["validate"], ["build", "-o", "OUT"], ["lint"]])
def test_a_date_in_year_9999_is_bad_input_not_a_crash(estate: Path, tmp_path: Path, command: list[str]) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("expires: 2027-12-31", "expires: 9999-12-31", 1))
    line = line_of(acme, "9999-12-31")
    args = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    result = program("--profiles", str(estate), *args, "--at", AT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"partners/acme.yaml:{line}: agreement.expires: must be a date from 1970-01-01 to 2100-12-31" in result.stderr
    assert "'9999-12-31'" in result.stderr


@pytest.mark.parametrize("value", ["2101-01-01", "2611-06-01", "1969-12-31"])
def test_dates_outside_the_horizon_are_refused_everywhere(estate: Path, value: str) -> None:
    acme = estate / "partners/acme.yaml"
    text = acme.read_text().replace("review_by: 2027-06-30", f"review_by: {value}")
    acme.write_text(text.replace("    expires: 2027-03-31", f"    expires: {value}"))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert f"partners/acme.yaml:{line_of(acme, 'review_by')}: review_by: must be a date from" in result.stderr
    assert f"partners/acme.yaml:{line_of(acme, '    expires: ' + value)}: grants[2].expires: must be" in result.stderr


def test_the_last_day_of_the_horizon_builds_a_ruleset_nft_accepts(estate: Path, tmp_path: Path, needs_root: None) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("2027-12-31", "2100-12-31").replace("2027-03-31", "2100-12-31"))
    result = run_cli("--profiles", str(estate), "build", "-o", str(tmp_path / "out"), "--at", "1970-01-01")
    assert result.exit_code == 0, result.stderr
    ruleset = tmp_path / "out/nftables/gatewayctl.nft"
    days = (dt.date(2101, 1, 1) - dt.date(1970, 1, 1)).days  # the end of the last day, from --at
    assert f"timeout {days}d" in ruleset.read_text()
    check = sh("nft", "-c", "-f", str(ruleset), check=False)
    assert check.returncode == 0, check.stderr


def test_the_schema_states_the_date_horizon() -> None:
    schema = json.loads(run_cli("schema", "--kind", "partner").stdout)
    expires = schema["$defs"]["Agreement"]["properties"]["expires"]
    assert (expires["formatMinimum"], expires["formatMaximum"]) == ("1970-01-01", "2100-12-31")


# --- 7: free text cannot reorder or break the text around it ------------------------------------------------

BAD_CHARACTERS = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029",
                  "\u0085", "\u0080", "\u009f", "\x1b", "\x7f"]


@pytest.mark.parametrize("char", BAD_CHARACTERS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARACTERS])
@pytest.mark.parametrize("field", ["name: ", "  reference: ", "    justification: ", "    approved_by: "])
def test_bidi_and_separator_characters_are_refused_in_free_text(estate: Path, char: str, field: str) -> None:
    acme = estate / "partners/acme.yaml"
    lines = acme.read_text().splitlines()
    index = next(i for i, text in enumerate(lines) if text.startswith(field))
    lines[index] = field + json.dumps(f"safe{char}txet")  # escaped: YAML's reader passes every one to the schema
    acme.write_text("\n".join(lines) + "\n")
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 2
    assert f"partners/acme.yaml:{index + 1}: " in result.stderr
    assert "bidirectional controls" in result.stderr


@pytest.mark.parametrize("char", ["\u202e", "\u2028", "\u0085", "\u2067"])
def test_descriptions_refuse_them_too_but_keep_newlines(estate: Path, char: str) -> None:
    acme = estate / "partners/acme.yaml"
    text = acme.read_text()
    for description, status in (("ok\n\tline two", 0), (f"ok\na{char}b", 2)):
        acme.write_text(text.replace("name: ACME Logistics GmbH\n", f"name: ACME\ndescription: {json.dumps(description)}\n"))
        result = run_cli("--profiles", str(estate), "validate", "--at", AT)
        assert result.exit_code == status, result.stderr
    assert f"partners/acme.yaml:{line_of(acme, 'description')}: description: must be text without control" in result.stderr


def test_ordinary_unicode_text_is_still_accepted(estate: Path) -> None:
    acme = estate / "partners/acme.yaml"
    acme.write_text(acme.read_text().replace("name: ACME Logistics GmbH", "name: Société Générale ACME 日本 \u00a0 ü"))
    result = run_cli("--profiles", str(estate), "validate", "--at", AT)
    assert result.exit_code == 0, result.stderr
