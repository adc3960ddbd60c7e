"""The CLI follows the conventions people bring with them (issue 18, point 4): the group's options
after the command too, a settings file (flag > environment > file > default), colour on a terminal
only (NO_COLOR, --no-color), report formats from the file name, and "did you mean" hints.

Expected values come from each test's own data (the files it writes, the names it misspells)."""

from __future__ import annotations

import datetime as dt
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gatewayctl.cli import colour
from gatewayctl.cli.main import _profiles_after, cli
from gatewayctl.drift.check import DriftReport, Finding
from gatewayctl.drift.formats import text as drift_text
from gatewayctl.plan.diff import Change, Plan
from gatewayctl.plan.render import plan_text
from tests.conftest import AT, PROFILES
from tests.test_apply_engine import estate  # noqa: F401 - the fixture: the example estate with keys made here

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GREEN, RED, YELLOW = "\x1b[32m", "\x1b[31m", "\x1b[33m"
EXPIRED = "grant of 'status-page' to partner 'initech' left out"  # the example estate's warning at AT


def invoke(*args: str, env: dict[str, str] | None = None, color: bool = False) -> Result:
    """gatewayctl in-process; `color=True` makes click treat the output as a terminal."""
    return CliRunner().invoke(cli, list(args), env=env, color=color, catch_exceptions=False)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a copy of the example estate as est/, with .git (the settings search ends
    there), as the working directory; no GATEWAYCTL_* or NO_COLOR from the caller's environment."""
    shutil.copytree(PROFILES, tmp_path / "est")
    (tmp_path / ".git").mkdir()
    for name in ("GATEWAYCTL_PROFILES", "GATEWAYCTL_GATEWAY", "GATEWAYCTL_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- the group's options after the command ------------------------------------------------------

def test_profiles_after_the_command_as_pre_commit_passes_it(place: Path) -> None:
    assert not (place / "profiles").exists()
    assert invoke("validate", "--profiles", "est", "--at", AT).exit_code == 0
    assert invoke("validate", "-p", "est", "--at", AT).exit_code == 0
    assert invoke("lint", "--at", AT, "--profiles", "est").exit_code == 0
    # given twice, the one after the command wins (it is the later one)
    assert invoke("--profiles", "missing", "validate", "--profiles", "est", "--at", AT).exit_code == 0
    late = invoke("--profiles", "est", "validate", "--profiles", "missing", "--at", AT)
    assert late.exit_code == 2 and "missing: profiles folder not found" in late.stderr


def test_quiet_verbose_and_debug_after_the_command(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert EXPIRED in invoke("validate", "-p", "est", "--at", AT).stderr
    assert EXPIRED not in invoke("validate", "-p", "est", "--at", AT, "-q").stderr
    assert EXPIRED not in invoke("-v", "validate", "-p", "est", "--at", AT, "--quiet").stderr  # quiet wins

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("gatewayctl.pipeline.compile_profiles", broken)
    plain = invoke("validate", "-p", "est", "--at", AT)
    assert plain.exit_code == 2 and "Traceback" not in plain.stderr and "--debug shows where" in plain.stderr
    debug = invoke("validate", "-p", "est", "--at", AT, "--debug")
    assert debug.exit_code == 2 and "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


def test_the_parse_helper_starts_on_the_folder_named_after_the_command(place: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Path] = []
    monkeypatch.setattr("gatewayctl.loader.prefetch.start", started.append)
    invoke("validate", "--at", AT, "--profiles", "est")
    invoke("--profiles", "elsewhere", "validate", "--at", AT, "-p", "est")
    assert started == [Path("est"), Path("est")]
    assert _profiles_after(["--profiles=a", "-p", "b"]) == Path("b")
    assert _profiles_after(["--at", AT, "--", "--profiles", "x"]) is None


def test_every_command_and_subcommand_takes_the_group_options() -> None:
    ctx = cli.make_context("gatewayctl", ["validate"], resilient_parsing=True)
    wanted = {"--profiles", "-p", "-v", "-q", "--debug", "--color", "--no-color", "--gateway"}

    def check(command: object, name: str) -> None:
        import click

        assert isinstance(command, click.Command)
        opts = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        assert wanted <= opts, (name, wanted - opts)
        for sub_name, sub in getattr(command, "commands", {}).items():
            check(sub, f"{name} {sub_name}")

    for name in cli.list_commands(ctx):
        check(cli.get_command(ctx, name), name)


# --- the settings file ---------------------------------------------------------------------------

def test_gatewayctl_toml_in_a_parent_sets_the_profiles_relative_to_itself(place: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (place / "gatewayctl.toml").write_text('profiles = "est"\n')
    (place / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(place / "sub" / "deeper")
    result = invoke("validate", "--at", AT)
    assert result.exit_code == 0, result.stderr
    assert "est/partners/initech.yaml" in result.stderr  # the estate the file named, found from below


def test_pyproject_tool_table_and_a_pyproject_without_one_is_passed_over(place: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (place / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.gatewayctl]\nprofiles = "est"\nquiet = true\n')
    (place / "sub").mkdir()
    (place / "sub" / "pyproject.toml").write_text('[project]\nname = "y"\n[project.scripts]\ngatewayctl = "a:b"\n')
    monkeypatch.chdir(place / "sub")
    result = invoke("validate", "--at", AT)
    assert result.exit_code == 0 and EXPIRED not in result.stderr  # quiet = true from the parent's table
    assert EXPIRED in invoke("validate", "--at", AT, "-v").stderr  # a -v flag outranks the file's quiet


def test_settings_beyond_the_repository_root_are_not_read(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (place / "gatewayctl.toml").write_text('profiles = "est"\n')
    repo = place / "repo"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(repo)
    result = invoke("validate", "--at", AT)
    assert result.exit_code == 2 and "profiles: profiles folder not found" in result.stderr


def test_precedence_flag_then_environment_then_file_then_default(place: Path) -> None:
    shutil.copytree(place / "est", place / "profiles")  # the built-in default's folder
    for name in ("from-file", "from-env", "from-flag"):
        shutil.copytree(place / "est", place / name)
        (place / name / "services.yaml").write_text(f"broken: [{name}\n")  # each load error names its folder

    def chosen(*args: str, env: dict[str, str] | None = None) -> str:
        result = invoke(*args, "--at", AT, env=env)
        found = re.search(r"(from-\w+|profiles)/services\.yaml", result.stderr)
        return found.group(1) if found else "profiles"

    assert chosen("validate") == "profiles"
    (place / "gatewayctl.toml").write_text('profiles = "from-file"\n')
    assert chosen("validate") == "from-file"
    env = {"GATEWAYCTL_PROFILES": "from-env"}
    assert chosen("validate", env=env) == "from-env"
    assert chosen("--profiles", "from-flag", "validate", env=env) == "from-flag"
    assert chosen("validate", "--profiles", "from-flag", env=env) == "from-flag"


def test_gateway_and_debug_from_the_file_and_the_environment_over_it(place: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (place / "gatewayctl.toml").write_text('profiles = "est"\ngateway = "gw-nowhere"\ndebug = true\n')
    result = invoke("validate", "--at", AT)
    assert result.exit_code == 2 and "--gateway 'gw-nowhere': no such gateway" in result.stderr
    assert invoke("validate", "--at", AT, env={"GATEWAYCTL_GATEWAY": "gw-fra-1"}).exit_code == 0

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("gatewayctl.pipeline.compile_profiles", broken)
    assert "Traceback" in invoke("validate", "--at", AT).stderr
    assert "Traceback" not in invoke("validate", "--at", AT, env={"GATEWAYCTL_DEBUG": "0"}).stderr


@pytest.mark.parametrize(("name", "text", "expect"), [
    ("gatewayctl.toml", 'profiles = "est"\n\nprofile = "x"\n',
     "gatewayctl.toml:3: unknown setting 'profile' (did you mean 'profiles'?)"),
    ("gatewayctl.toml", 'profiles = "est"\ncolor = "yes"\n', "gatewayctl.toml:2: color: must be true or false; found 'yes'"),
    ("gatewayctl.toml", 'verbose = true\n', "gatewayctl.toml:1: verbose: must be a whole number from 0 to 3"),
    ("gatewayctl.toml", 'gateway = []\n', "gatewayctl.toml:1: gateway: must be a gateway name or a list"),
    ("gatewayctl.toml", 'profiles = "est"\n[extra]\nx = 1\n', "gatewayctl.toml:2: unknown setting 'extra'"),
    ("gatewayctl.toml", 'profiles = "est\n', "gatewayctl.toml:1: not valid TOML"),
    ("pyproject.toml", '[project]\nname = "x"\n[tool.gatewayctl]\nprofiles = "est"\nqiet = true\n',
     "pyproject.toml:5: unknown setting 'qiet' (did you mean 'quiet'?)"),
])
def test_a_bad_settings_file_names_file_line_and_value(place: Path, name: str, text: str, expect: str) -> None:
    (place / name).write_text(text)
    result = invoke("validate", "--at", AT)
    assert result.exit_code == 2 and f"error: {expect}" in result.stderr, result.stderr


# --- colour -------------------------------------------------------------------------------------

def test_plan_and_drift_text_are_painted_by_meaning() -> None:
    plan = Plan((Change("+", "firewall", "grant acme/crm-api", ""), Change("-", "peer", "old-peer", ""),
                 Change("~", "link", "mtu", "1420 -> 1380")), ("forwarding is off",), ())
    lines = plan_text(plan, colour.ansi).splitlines()
    assert lines[0].startswith(RED) and "blocked: forwarding is off" in lines[0]
    assert lines[1].startswith(GREEN) and lines[2].startswith(RED) and lines[3].startswith(YELLOW)
    assert not ANSI.search(plan_text(plan)) and ANSI.sub("", "\n".join(lines)) == plan_text(plan)
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    synced = drift_text(DriftReport(0, (), None, at), colour.ansi)
    assert synced.startswith(GREEN + "in sync")
    drifted = drift_text(DriftReport(1, (Finding("host", "element-added", "acme", "grants4 x", ""),
                                         Finding("profiles", "element-missing", "acme", "grants4 y", "")), None, at),
                         colour.ansi).splitlines()
    assert drifted[0].startswith(RED) and drifted[2].startswith(RED) and drifted[3].startswith(YELLOW)


def lint_error_estate(place: Path) -> None:
    """GW101 (an error): a pilot partner granted two services (tests/cases/lint/GW101.yaml's edit)."""
    path = place / "est" / "partners" / "initech.yaml"
    text = path.read_text()
    path.write_text(text.replace("  - service: status-page", "  - service: dns", 1)
                    .replace("    expires: 2026-10-31", "    expires: 2027-01-31", 1))


def test_lint_colours_on_a_terminal_and_not_otherwise(place: Path) -> None:
    args = ("lint", "-p", "est", "--at", AT)
    warning = next(line for line in invoke(*args, color=True).stdout.splitlines() if "GW201" in line)
    assert warning.startswith(YELLOW), warning  # the example estate's expired grant: a warning, yellow
    lint_error_estate(place)
    on_terminal = invoke(*args, color=True).stdout
    gw101 = next(line for line in on_terminal.splitlines() if "GW101" in line)
    assert gw101.startswith(RED), gw101  # an error: red
    assert not ANSI.search(invoke(*args).stdout)  # not a terminal
    assert not ANSI.search(invoke(*args, color=True, env={"NO_COLOR": "1"}).stdout)
    assert not ANSI.search(invoke(*args, "--no-color", color=True).stdout)
    assert not ANSI.search(invoke("--no-color", *args, color=True).stdout)
    assert ANSI.search(invoke(*args, "--color").stdout)  # asked for: kept even into a pipe
    assert ANSI.search(invoke(*args, color=True, env={"NO_COLOR": ""}).stdout)  # empty: not set (no-color.org)


def test_lint_written_to_a_file_never_has_colour(place: Path) -> None:
    lint_error_estate(place)
    invoke("lint", "-p", "est", "--at", AT, "--color", "-o", "lint.txt")
    assert "GW101" in (place / "lint.txt").read_text() and not ANSI.search((place / "lint.txt").read_text())


def test_diff_paints_added_access_green_and_removed_red(tmp_path: Path) -> None:
    from tests.test_review import new_repo

    repo = new_repo(tmp_path)
    repo.commit("base")
    repo.edit("partners/globex.yaml", "  - service: crm-api\n    justification: Joint customer onboarding.\n"
              "    approved_by: Maria Lopez (CISO delegate)\n    expires: 2027-09-30\n", "")
    repo.commit("less")

    def diff(base: str, head: str, *more: str) -> list[str]:
        result = invoke("--profiles", str(repo.profiles), "diff", "--base", base, "--head", head, "--at", AT, *more,
                        color=True)
        assert result.exit_code == 1, result.stderr
        return result.stdout.splitlines()

    removed = diff("HEAD~1", "HEAD")
    assert any(line.startswith(RED) and "flow-removed" in line for line in removed), removed
    added = diff("HEAD", "HEAD~1")
    assert any(line.startswith(GREEN) and "flow-added" in line for line in added), added
    assert not ANSI.search("\n".join(diff("HEAD~1", "HEAD", "--no-color")))


def on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run gatewayctl with stdout on a pseudo-terminal (stderr on a pipe): status and what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gatewayctl", *args], stdout=follower, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output within 60 s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    proc.communicate(timeout=60)
    return proc.returncode, b"".join(chunks).decode()


def test_a_real_terminal_gets_colour_unless_no_color_or_the_flag(place: Path) -> None:
    lint_error_estate(place)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "GATEWAYCTL_PROFILES")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    args = ["lint", "-p", "est", "--at", AT]
    status, shown = on_terminal(args, env, place)
    assert status == 1 and "GW101" in shown and ANSI.search(shown), shown
    assert not ANSI.search(on_terminal(args, {**env, "NO_COLOR": "1"}, place)[1])
    assert not ANSI.search(on_terminal([*args, "--no-color"], env, place)[1])
    piped = subprocess.run([sys.executable, "-m", "gatewayctl", *args], capture_output=True, text=True, env=env,
                           cwd=place, timeout=60, check=False)
    assert "GW101" in piped.stdout and not ANSI.search(piped.stdout)


# --- report formats ------------------------------------------------------------------------------

def test_report_refuses_a_file_name_it_cannot_tell_the_format_of(place: Path) -> None:
    result = invoke("report", "-p", "est", "--offline", "-o", "report.txt")
    assert result.exit_code == 2 and "'report.txt'" in result.stderr and ".prom" in result.stderr
    assert not (place / "report.txt").exists()
    assert invoke("report", "-p", "est", "--offline", "--format", "markdown", "-o", "report.txt").exit_code in (0, 1)
    assert (place / "report.txt").read_text().startswith("#")  # --format says what the name does not
    for name, start in (("r.prom", "# HELP"), ("r.htm", "<!DOCTYPE html>"), ("r.json", "{")):
        assert invoke("report", "-p", "est", "--offline", "-o", name).exit_code in (0, 1)
        assert (place / name).read_text().lstrip().startswith(start), name


def test_report_on_a_terminal_prints_markdown_not_html(place: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAYCTL_PROFILES"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    status, shown = on_terminal(["report", "-p", "est", "--offline"], env, place)
    assert status in (0, 1) and "<html" not in shown.lower() and shown.lstrip().startswith("#"), shown[:300]
    piped = invoke("report", "-p", "est", "--offline")  # into a pipe or a file: HTML, as before
    assert piped.stdout.lstrip().lower().startswith("<!doctype html>")


# --- did you mean ------------------------------------------------------------------------------

def test_an_unknown_command_names_the_closest(place: Path) -> None:
    result = invoke("valdate")
    assert result.exit_code == 2 and "No such command 'valdate' (did you mean 'validate'?)" in result.stderr
    assert "did you mean" not in invoke("frobnicate").stderr


@pytest.mark.parametrize(("rel", "old", "new", "expect"), [
    ("partners/acme.yaml", "    justification: Order status", "    justifcation: Order status",
     "grants[0].justifcation: unknown field (did you mean 'justification'?"),
    ("partners/acme.yaml", "  reference:", "  refrence:", "agreement.refrence: unknown field (did you mean 'reference'?"),
    ("partners/acme.yaml", "stage: established", "stage: established\nstgae: pilot", "stgae: unknown field (did you mean 'stage'?"),
    ("services.yaml", "    protocol: tcp", "    protocl: tcp", "protocl: unknown field (did you mean 'protocol'?"),
    ("partners/acme.yaml", "stage: established", "stage: established\nzzzzzz: 1", "zzzzzz: unknown field (check its spelling"),
])
def test_an_unknown_field_names_the_closest_field_of_its_place(place: Path, rel: str, old: str, new: str,
                                                               expect: str) -> None:
    path = place / "est" / rel
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    result = invoke("validate", "-p", "est", "--at", AT)
    assert result.exit_code == 2 and expect in result.stderr, result.stderr


def test_an_unknown_service_in_a_grant_names_the_closest(place: Path) -> None:
    path = place / "est" / "partners" / "acme.yaml"
    path.write_text(path.read_text().replace("  - service: crm-api", "  - service: crm-apj", 1))
    result = invoke("validate", "-p", "est", "--at", AT)
    assert "unknown service 'crm-apj' (did you mean 'crm-api'?)" in result.stderr, result.stderr


def test_an_unknown_partner_names_the_closest(place: Path) -> None:
    reported = invoke("report", "-p", "est", "--offline", "--partner", "acmee", "--format", "json")
    assert reported.exit_code == 2 and "no partner 'acmee' in the profiles (did you mean 'acme'?)" in reported.stderr
    queried = invoke("query", "-p", "est", "--at", AT, "--partner", "globx")
    assert queried.exit_code == 2 and "did you mean 'globex'?" in queried.stderr, queried.stderr


def test_revoke_of_an_unknown_partner_names_the_closest(estate: Path, tmp_path: Path) -> None:  # noqa: F811
    from gatewayctl.apply.revoke import revoke
    from gatewayctl.host.errors import HostError
    from gatewayctl.state import StateDir
    from tests.test_revoke_unit import applied_host

    state = StateDir(tmp_path / "state")
    host = applied_host(estate, state)
    with pytest.raises(HostError, match=r"partner 'umbrela' has no peer on this gateway.*did you mean 'umbrella'\?"):
        revoke(host, state, "umbrela", None, "INC-1")
