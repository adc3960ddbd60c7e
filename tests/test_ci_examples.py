"""The pre-commit hooks and CI examples call commands and options that exist, and run here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from gatewayctl.cli.main import cli
from tests.conftest import REPO, run_cli


def gatewayctl_calls(text: str) -> list[list[str]]:
    calls = []
    code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    for match in re.finditer(r"\bgatewayctl ([^|>&\n]*)", code):
        words = shlex.split(match.group(1).replace('"', "").replace("$", "").replace("{", "").replace("}", ""))
        if words and not words[0].startswith("@"):
            calls.append(words)
    return calls


def test_every_example_command_and_option_exists() -> None:
    files = [REPO / ".pre-commit-hooks.yaml", REPO / "docs/ci/github-actions.yml", REPO / "docs/ci/gitlab-ci.yml"]
    calls = [c for f in files for c in gatewayctl_calls(f.read_text())]
    assert len(calls) >= 9
    for call in calls:
        command = cli.get_command(click.Context(cli), call[0])
        assert command is not None, call
        options = {o for p in command.params for o in p.opts}
        for word in call[1:]:
            if word.startswith("-"):
                assert word in options, (call, word)


def test_pre_commit_hooks_are_well_formed_and_pass_on_the_example() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"gatewayctl-validate", "gatewayctl-lint", "gatewayctl-test"}
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook) and hook["pass_filenames"] is False
        args = hook["entry"].split()[1:]
        result = run_cli("--profiles", str(REPO / "profiles"), *args)
        assert result.exit_code == 0, (hook["id"], result.stdout, result.stderr)


def test_workflow_files_parse() -> None:
    github = yaml.safe_load((REPO / "docs/ci/github-actions.yml").read_text())
    assert "review" in github["jobs"] and github["permissions"]["security-events"] == "write"
    gitlab = yaml.safe_load((REPO / "docs/ci/gitlab-ci.yml").read_text())
    assert "script" in gitlab["gatewayctl"]
    assert Path(REPO / "docs/review.md").exists()
