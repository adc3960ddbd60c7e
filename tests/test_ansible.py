"""The Ansible collection (ansible/ansible_collections/gatewayctl/gateway): built, linted, and run for
real: ansible-core drives the shipped playbooks over SSH against three gateway namespaces, each with
its own sshd, nftables and wireguard-go (tests/sshlab.py describes the lab and its estate).

The lab tests run in file order on one lab (a module fixture): check mode on fresh gateways, the first
rollout, a second run, a change that concerns one gateway, a change that fails on the canary, and the
fleet drift summary. Expected values come from the estate as tests/sshlab.py writes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sshlab import COLLECTIONS, CONFIRM_TIMEOUT, VENV_BIN, SshLab
from tests.sshlab_estate import GATEWAYS, git, keypair

COLLECTION = COLLECTIONS / "ansible_collections" / "gatewayctl" / "gateway"
MODULES = ("gatewayctl_apply", "gatewayctl_confirm", "gatewayctl_facts", "gatewayctl_handshakes")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
APPLY_TASK = "Apply the revision, rolled back unless confirmed in time"
CONFIRM_TASK = "Confirm, now that every gateway of this batch passed its checks"


def tool_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_HOME": str(tmp / "home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "tmp"), "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "NO_COLOR": "1",
            "ANSIBLE_NOCOLOR": "1"}


# --- the collection itself ------------------------------------------------------------------------------

def test_the_collection_builds_with_ansible_galaxy(tmp_path: Path) -> None:
    result = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path",
                             str(tmp_path)], capture_output=True, text=True, timeout=120, env=tool_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    built = list(tmp_path.glob("gatewayctl-gateway-*.tar.gz"))
    assert len(built) == 1
    listing = subprocess.run(["tar", "tzf", str(built[0])], capture_output=True, text=True, check=True).stdout.split()
    assert {f"plugins/modules/{m}.py" for m in MODULES} | {"playbooks/rollout.yml", "playbooks/fleet_drift.yml",
                                                          "meta/runtime.yml", "MANIFEST.json"} <= set(listing)


def test_ansible_lint_passes_on_the_collection_and_playbooks(tmp_path: Path) -> None:
    # a copy: ansible-lint keeps a cache folder (.ansible) in the project it lints
    copy = tmp_path / "ansible_collections" / "gatewayctl" / "gateway"
    shutil.copytree(COLLECTION, copy)
    env = {**tool_env(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    result = subprocess.run([str(VENV_BIN / "ansible-lint"), "--offline", "--nocolor"], cwd=copy, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_reads_each_module(module: str, tmp_path: Path) -> None:
    result = subprocess.run([str(VENV_BIN / "ansible-doc"), "--json", f"gatewayctl.gateway.{module}"], capture_output=True,
                            text=True, timeout=60, env=tool_env(tmp_path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)[f"gatewayctl.gateway.{module}"]
    assert doc["doc"]["options"] and doc["examples"].strip() and doc["return"]


# --- modules run locally (no SSH): what they refuse ----------------------------------------------------

def local_module(tmp: Path, module: str, args: dict[str, Any], *flags: str) -> dict[str, Any]:
    """One module on localhost (connection local); its result."""
    result = subprocess.run([str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", f"gatewayctl.gateway.{module}",
                             "-a", json.dumps(args), "-o", *flags], capture_output=True, text=True, timeout=120,
                            env={**tool_env(tmp), "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python")})
    return parse_oneline(result.stdout)


def parse_oneline(stdout: str) -> dict[str, Any]:
    """`host | STATUS => {json}` (ansible -o) -> the JSON, with the status as `_status`."""
    head, _, body = stdout.strip().partition(" => ")
    data: dict[str, Any] = json.loads(body)
    data["_status"] = head.split("|")[1].strip().split("!")[0]
    return data


def fake_gatewayctl(path: Path, stderr: str, code: int) -> Path:
    """A gatewayctl stand-in that answers every call with `stderr` and exit `code` (an older release)."""
    path.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'gatewayctl, version 0.0.9'; exit 0; }}\n"
                    f"echo {json.dumps(stderr)} >&2\nexit {code}\n")
    path.chmod(0o755)
    return path


def test_gateway_option_with_a_gatewayctl_that_does_not_know_it_fails_clearly(tmp_path: Path) -> None:
    old = fake_gatewayctl(tmp_path / "gatewayctl", "Error: No such option: --gateway", 2)
    (tmp_path / "profiles").mkdir()
    result = local_module(tmp_path, "gatewayctl_apply", {"profiles": str(tmp_path / "profiles"), "gateway": "gw-a",
                                                         "executable": str(old)}, "--check")
    assert result["_status"] == "FAILED"
    assert "does not know --gateway" in result["msg"] and "0.0.9" in result["msg"]


def test_a_failure_carries_gatewayctls_error_text_and_exit_code(tmp_path: Path, netns: str) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "gateway.yaml").write_text("name: gw\nwireguard: [\n")  # broken YAML
    gatewayctl = VENV_BIN / "gatewayctl"
    result = local_module(tmp_path, "gatewayctl_apply", {"profiles": str(profiles), "executable": str(gatewayctl),
                                                         "state_dir": str(tmp_path / "state"), "netns": netns}, "--check")
    assert result["_status"] == "FAILED" and result["rc"] == 2
    assert result["msg"].startswith("gatewayctl plan failed (exit 2): ") and "gateway.yaml:" in result["msg"]


def _repo_with_profiles(tmp: Path) -> tuple[Path, str]:
    repo = tmp / "repo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "profiles" / "gateway.yaml").write_text("name: gw\n")
    git(tmp, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "profiles" / "gateway.yaml").write_text("name: gw2\n")
    git(repo, "commit", "-q", "-am", "two")
    return repo, first


def test_a_checkout_with_local_changes_is_neither_applied_nor_moved(tmp_path: Path) -> None:
    repo, first = _repo_with_profiles(tmp_path)
    (repo / "profiles" / "gateway.yaml").write_text("name: edited by hand\n")
    result = local_module(tmp_path, "gatewayctl_apply", {"profiles": str(repo / "profiles"), "revision": first,
                                                         "executable": str(VENV_BIN / "gatewayctl")})
    assert result["_status"] == "FAILED" and "local changes" in result["msg"] and "gateway.yaml" in result["msg"]
    assert (repo / "profiles" / "gateway.yaml").read_text() == "name: edited by hand\n"
    assert git(repo, "rev-parse", "HEAD") != first


def test_checkout_off_refuses_a_checkout_at_another_revision(tmp_path: Path) -> None:
    repo, first = _repo_with_profiles(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    result = local_module(tmp_path, "gatewayctl_apply", {"profiles": str(repo / "profiles"), "revision": first,
                                                         "checkout": False, "executable": str(VENV_BIN / "gatewayctl")})
    assert result["_status"] == "FAILED" and f"is at {head}, not at revision {first}" in result["msg"]
    assert git(repo, "rev-parse", "HEAD") == head


# --- the fleet over SSH ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshLab]:
    missing = [t for t in ("nft", "ip", "wireguard-go", "wg", "ssh", "ssh-keygen", "/usr/sbin/sshd", "git") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {', '.join(missing) or 'nothing else'}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must provide it")
        pytest.skip(reason)
    made = SshLab(tmp_path_factory.mktemp("sshlab"))
    try:
        yield made.up()
    finally:
        made.down()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"gws{made.token}" not in left


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP per host: ok, changed, unreachable, failed."""
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(stdout)}


def events(stdout: str) -> list[tuple[str, str, str]]:
    """(task, status, host) in the order the default callback printed them."""
    found, task = [], ""
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")]
        elif m := re.match(r"^(ok|changed|fatal|skipping|failed): \[([^\]]+)\]", line):
            found.append((task, m[1], m[2]))
    return found


SORT_TASKS = ("Does this host hold its pair's floating address (the active node)?", "Put the host in its rollout group")


def worked_on(stdout: str) -> set[str]:
    """The hosts any task ran on beyond sorting the gateways into their rollout groups."""
    return {h for t, _, h in events(stdout) if t not in SORT_TASKS} | ({"localhost"} if "localhost" in recap(stdout) else set())


def rulesets(lab: SshLab) -> dict[str, list[Any]]:
    return {gw.name: gw.ruleset() for gw in lab.gateways}


def ruleset_diff(before: list[Any], after: list[Any]) -> str:
    """What differs between two rulesets, as a unified diff of their JSON (for assertion messages)."""
    import difflib

    return "\n".join(difflib.unified_diff(json.dumps(before, indent=1).splitlines(), json.dumps(after, indent=1).splitlines(),
                                          lineterm="", n=2))


def journal(gw: Any) -> list[dict[str, Any]]:
    path = gw.state / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_check_mode_on_fresh_gateways_changes_nothing(lab: SshLab) -> None:
    before = rulesets(lab)
    run = lab.playbook("rollout.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(recap(run.stdout)[g]["changed"] == 1 for g in GATEWAYS), run.stdout  # the apply would change each
    for gw in lab.gateways:
        assert f"+peer acme/acme-hq: allowed IPs 10.20{GATEWAYS.index(gw.name) + 1}.1.1/32" in run.stdout
    assert "+peer globex/globex-hq" in run.stdout.split("after: gw-c")[1]
    assert rulesets(lab) == before  # no table anywhere: nothing was loaded
    assert all(gw.wg_port() == "" and journal(gw) == [] for gw in lab.gateways)
    assert all(gw.drift()["last_apply"] is None for gw in lab.gateways)


def test_the_rollout_applies_every_gateway_canary_first(lab: SshLab) -> None:
    revision = git(lab.work, "rev-parse", "HEAD")
    run = lab.playbook("rollout.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    seen = [(task, host) for task, status, host in events(run.stdout) if task in (APPLY_TASK, CONFIRM_TASK)]
    # one gateway at a time (serial 1, 50% of 3 = 1, the rest), each confirmed before the next applies
    assert seen == [(t, g) for g in GATEWAYS for t in (APPLY_TASK, CONFIRM_TASK)], seen
    assert all(recap(run.stdout)[g]["failed"] == 0 for g in GATEWAYS)
    assert [(t, s) for t, s, h in events(run.stdout) if t.startswith("WireGuard handshakes") or t == "The site's own checks"] \
        == [("WireGuard handshakes of the peers that must keep their tunnel up", "ok"), ("The site's own checks", "ok")] * 3
    for i, gw in enumerate(lab.gateways):
        drift = gw.drift()
        assert drift["status"] == "in-sync" and drift["last_apply"]["revision"] == revision
        assert gw.wg_port() == str(51820 + i) and not (gw.state / "pending-confirm.json").exists()
        assert [e["event"] for e in journal(gw)] == ["applied", "confirmed"]
        assert lab.eventually_reach(i, 443) and not lab.reach(i, 22)  # as the profiles say, through each gateway


def test_the_handshake_module_names_the_peers_without_a_handshake(lab: SshLab) -> None:
    gw = lab.gateways[0]
    good = parse_oneline(lab.adhoc(gw.name, "gatewayctl.gateway.gatewayctl_handshakes",
                                   {"peers": [lab.acme_public_key()], "interface": gw.ifname, "wait": 0}).stdout)
    assert good["_status"] == "SUCCESS" and good["missing"] == [] and time.time() - good["handshakes"][lab.acme_public_key()] < 180
    stranger = keypair()[1]
    bad = parse_oneline(lab.adhoc(gw.name, "gatewayctl.gateway.gatewayctl_handshakes",
                                  {"peers": [lab.acme_public_key(), stranger], "interface": gw.ifname, "wait": 1}).stdout)
    assert bad["_status"] == "FAILED" and bad["missing"] == [stranger]
    assert bad["msg"] == f"no WireGuard handshake within 180 s on {gw.ifname} from: {stranger} (not peers of this interface: {stranger})"


def test_a_second_run_changes_nothing(lab: SshLab) -> None:
    before = {gw.name: len(journal(gw)) for gw in lab.gateways}
    run = lab.playbook("rollout.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {g: recap(run.stdout)[g]["changed"] for g in GATEWAYS} == dict.fromkeys(GATEWAYS, 0), run.stdout
    assert {gw.name: len(journal(gw)) for gw in lab.gateways} == before  # no apply, no confirm


def _add_globex_service(lab: SshLab) -> None:
    """A new service behind gw-c only (10.13.0.6) granted to globex, which only gw-c serves."""
    services = json.loads((lab.work / "profiles" / "services.yaml").read_text())
    services["services"]["app-c2"] = {**services["services"]["app-c"], "addresses": ["10.13.0.6/32"]}
    (lab.work / "profiles" / "services.yaml").write_text(json.dumps(services, indent=1))
    globex = json.loads((lab.work / "profiles" / "partners" / "globex.yaml").read_text())
    globex["grants"].append({**globex["grants"][0], "service": "app-c2"})
    (lab.work / "profiles" / "partners" / "globex.yaml").write_text(json.dumps(globex, indent=1))


def test_check_mode_of_a_new_revision_moves_no_checkout_and_touches_no_host(lab: SshLab) -> None:
    old = git(lab.work, "rev-parse", "HEAD")
    _add_globex_service(lab)
    lab.commit("globex reaches app-c2 (behind gw-c)")
    before = rulesets(lab)
    run = lab.playbook("rollout.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {g: recap(run.stdout)[g]["changed"] for g in GATEWAYS} == {"gw-a": 0, "gw-b": 0, "gw-c": 1}
    assert "+firewall globex: 10.203.2.1 -> 10.13.0.6 tcp/443" in run.stdout
    gw_c = lab.gateways[2]
    planned = parse_oneline(lab.adhoc("gw-c", "gatewayctl.gateway.gatewayctl_apply", {
        "profiles": str(gw_c.profiles), "revision": "origin/main", "gateway": "gw-c", "state_dir": str(gw_c.state),
        "executable": str(VENV_BIN / "gatewayctl")}, "--check").stdout)
    assert planned["_status"] == "CHANGED" and planned["revision"] == git(lab.work, "rev-parse", "HEAD")
    assert planned["access_added"] == ["globex: 10.203.2.1 -> 10.13.0.6 tcp/443"] and planned["access_removed"] == []
    assert planned["checkout_changed"] is True and planned["applied_changes"] == 0 and planned["apply_id"] is None
    assert rulesets(lab) == before and all(gw.drift()["status"] == "in-sync" for gw in lab.gateways)  # drift proves it
    assert all(git(gw.checkout, "rev-parse", "HEAD") == old for gw in lab.gateways)


def test_a_change_concerning_one_gateway_touches_only_that_one(lab: SshLab) -> None:
    revision = git(lab.work, "rev-parse", "HEAD")
    before, applies = rulesets(lab), {gw.name: len(journal(gw)) for gw in lab.gateways}
    run = lab.playbook("rollout.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {g: recap(run.stdout)[g]["changed"] > 0 for g in GATEWAYS} == {"gw-a": False, "gw-b": False, "gw-c": True}
    after = rulesets(lab)
    assert after["gw-a"] == before["gw-a"] and after["gw-b"] == before["gw-b"] and after["gw-c"] != before["gw-c"]
    assert {gw.name: len(journal(gw)) - applies[gw.name] for gw in lab.gateways} == {"gw-a": 0, "gw-b": 0, "gw-c": 2}
    for gw in lab.gateways:  # every checkout is at the revision and every gateway is in sync with it
        assert git(gw.checkout, "rev-parse", "HEAD") == revision and gw.drift()["status"] == "in-sync"


def test_a_change_failing_on_the_canary_rolls_it_back_and_stops_the_rollout(lab: SshLab) -> None:
    good = git(lab.work, "rev-parse", "HEAD")
    acme = lab.work / "profiles" / "partners" / "acme.yaml"
    doc = json.loads(acme.read_text())
    doc["grants"] = [g for g in doc["grants"] if g["service"] not in ("app-a", "app-b")]  # the policy tests still want them
    acme.write_text(json.dumps(doc, indent=1))
    bad = lab.commit("acme loses app-a and app-b (its policy tests say otherwise)")
    before, canary_entries, ends = rulesets(lab), len(journal(lab.gateways[0])), lab.gateways[0].element_ends()
    previous = lab.gateways[0].drift()["last_apply"]["revision"]  # the last change that concerned it
    started = time.monotonic()
    run = lab.playbook("rollout.yml")
    assert run.returncode != 0
    assert "policy tests failed on gw-a" in run.stdout and "acme reaches app-a" in run.stdout, run.stdout
    assert [(t, h) for t, _, h in events(run.stdout) if t == APPLY_TASK] == [(APPLY_TASK, "gw-a")]
    assert not any(t == CONFIRM_TASK for t, _, _ in events(run.stdout))
    assert worked_on(run.stdout) == {"localhost", "gw-a"}  # the rollout stopped after the canary
    canary = lab.gateways[0]
    assert not lab.reach(0, 443)  # the bad change is in force until the timer runs out
    deadline = started + CONFIRM_TIMEOUT + 30
    while not any(e["event"] == "rolled-back" for e in journal(canary)) and time.monotonic() < deadline:
        time.sleep(0.5)
    new = [e["event"] for e in journal(canary)][canary_entries:]
    assert new[0] == "applied" and new[-1] == "rolled-back" and "confirmed" not in new, new
    after = rulesets(lab)
    for name in GATEWAYS:  # the canary is back; the others never changed
        assert after[name] == before[name], ruleset_diff(before[name], after[name])
    ends_now = canary.element_ends()
    assert ends and ends_now.keys() == ends.keys(), (ends, ends_now)
    lab.notes["canary element ends"] = (ends, ends_now)  # for the next test
    assert lab.eventually_reach(0, 443)
    rolled = next(e["apply_id"] for e in journal(canary)[canary_entries:] if e["event"] == "rolled-back")
    late = parse_oneline(lab.adhoc("gw-a", "gatewayctl.gateway.gatewayctl_confirm", {
        "apply_id": rolled, "state_dir": str(canary.state), "executable": str(VENV_BIN / "gatewayctl")}).stdout)
    assert late["_status"] == "FAILED" and late["msg"].startswith(f"too late: apply {rolled} was rolled back at ")
    drift = canary.drift()
    assert drift["last_apply"]["revision"] == previous and drift["status"] == "profiles-not-applied"  # its checkout is at `bad`
    lab.notes["canary last applied"] = previous
    assert git(canary.checkout, "rev-parse", "HEAD") == bad
    for gw in lab.gateways[1:]:
        assert git(gw.checkout, "rev-parse", "HEAD") == good and gw.drift()["status"] == "in-sync"


def test_the_rolled_back_canary_keeps_every_grants_end_instant(lab: SshLab) -> None:
    before, after = lab.notes["canary element ends"]
    assert all(abs(after[k] - before[k]) < 3 for k in before), (before, after)


def test_fleet_drift_writes_one_summary_of_every_gateway(lab: SshLab, tmp_path: Path) -> None:
    run = lab.playbook("fleet_drift.yml", "-e", f"gatewayctl_report_dir={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((tmp_path / "fleet-drift.json").read_text())
    by_host = {g["host"]: g for g in summary["gateways"]}
    assert summary["format"] == "gatewayctl-fleet-drift/1" and sorted(by_host) == sorted(GATEWAYS)
    previous = lab.notes["canary last applied"]
    assert by_host["gw-a"]["status"] == "profiles-not-applied" and by_host["gw-a"]["last_apply"]["revision"] == previous
    assert by_host["gw-a"]["checkout_revision"] == git(lab.work, "rev-parse", "HEAD")  # the failed revision
    assert by_host["gw-b"]["status"] == by_host["gw-c"]["status"] == "in-sync"
    assert all(g["gateway"] == g["host"] and len(g["last_apply"]["digest"]) == 64 for g in summary["gateways"])
    assert summary["counts"] == {"in-sync": 2, "host-changed": 0, "profiles-not-applied": 1, "unreadable": 0}
    markdown = (tmp_path / "fleet-drift.md").read_text()
    assert markdown.startswith("# Fleet drift: 3 gateways")
    rows = [line for line in markdown.splitlines() if line.startswith("| gw-")]
    assert len(rows) == 3 and f"| gw-a | gw-a | profiles-not-applied | {previous[:12]} |" in markdown
    assert "## gw-a (gw-a): profiles-not-applied" in markdown


def test_an_apply_failing_on_the_canary_is_undone_by_gatewayctl_and_stops_the_rollout(lab: SshLab) -> None:
    """The canary's new listen port is taken: gatewayctl's apply fails and restores the previous state
    itself (exit 1); the task says so in gatewayctl's words, the checkout goes back, nothing else runs."""
    canary = lab.gateways[0]
    gateway = json.loads((lab.work / "profiles" / "gateway.yaml").read_text())
    gateway["gateways"]["gw-a"]["wireguard"]["listen_port"] = 51830
    (lab.work / "profiles" / "gateway.yaml").write_text(json.dumps(gateway, indent=1))
    lab.commit("gw-a listens on 51830")
    checkouts = {gw.name: git(gw.checkout, "rev-parse", "HEAD") for gw in lab.gateways}
    before, entries = rulesets(lab), len(journal(canary))
    squatter = subprocess.Popen(["ip", "netns", "exec", canary.ns, "python3", "-c", "import socket,time\n"
                                 "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.bind(('::',51830));time.sleep(120)"])
    try:
        time.sleep(0.5)
        run = lab.playbook("rollout.yml")
    finally:
        squatter.terminate()
        squatter.wait()
    assert run.returncode != 0
    fatal = next(line for line in run.stdout.splitlines() if line.startswith("fatal: [gw-a]"))
    result = json.loads(fatal.split(" => ", 1)[1])
    assert result["rc"] == 1 and result["rolled_back"] is True
    assert result["msg"].startswith("gatewayctl apply failed (exit 1): the apply failed and gatewayctl restored the previous")
    failed = journal(canary)[entries:]
    assert [e["event"] for e in failed][:1] == ["failed"]
    assert f"apply failed: {failed[0]['error']}" in result["msg"], (failed, result["msg"])  # gatewayctl's own error text
    assert worked_on(run.stdout) == {"localhost", "gw-a"}
    assert not (canary.state / "pending-confirm.json").exists()
    assert {gw.name: git(gw.checkout, "rev-parse", "HEAD") for gw in lab.gateways} == checkouts  # the canary's moved back
    after = rulesets(lab)
    assert all(after[g] == before[g] for g in GATEWAYS) and canary.wg_port() == "51820"


def test_after_a_rollback_the_next_good_rollout_goes_through(lab: SshLab) -> None:
    """A revision that puts back what the canary runs: nothing to apply there, nothing pending, so the
    confirm of this rollout has nothing to do (the earlier rollback is not this rollout's)."""
    acme = lab.work / "profiles" / "partners" / "acme.yaml"
    doc = json.loads(acme.read_text())
    doc["grants"] = [{**doc["grants"][0], "service": s} for s in ("app-a", "app-b", "app-c")]
    acme.write_text(json.dumps(doc, indent=1))
    gateway = json.loads((lab.work / "profiles" / "gateway.yaml").read_text())
    gateway["gateways"]["gw-a"]["wireguard"]["listen_port"] = 51820
    (lab.work / "profiles" / "gateway.yaml").write_text(json.dumps(gateway, indent=1))
    revision = lab.commit("acme's access and gw-a's port as before")
    run = lab.playbook("rollout.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert {g: recap(run.stdout)[g]["changed"] for g in GATEWAYS} == dict.fromkeys(GATEWAYS, 0), run.stdout
    for gw in lab.gateways:
        assert git(gw.checkout, "rev-parse", "HEAD") == revision and gw.drift()["status"] == "in-sync"


def test_a_pair_goes_standby_first_and_never_in_one_batch_with_its_active_node(lab: SshLab) -> None:
    """Two gateways of the inventory stand in for the two nodes of a pair (gatewayctl_floating_address):
    the one holding the address (gw-b) is the active node. The standby (gw-c) goes with the single
    gateway (gw-a, the canary), and the active node only after both passed, in a play of its own."""
    floating = "192.0.2.99"  # on gw-b's loopback: it holds the pair's floating address
    inventory_path = lab.root / "inventory.json"
    saved = inventory_path.read_text()
    inventory = json.loads(saved)
    for host in ("gw-b", "gw-c"):
        inventory["gateways"]["hosts"][host]["gatewayctl_floating_address"] = floating
    inventory_path.write_text(json.dumps(inventory))
    lab.gateways[1].run("ip", "addr", "add", f"{floating}/32", "dev", "lo")
    acme = lab.work / "profiles" / "partners" / "acme.yaml"
    doc = json.loads(acme.read_text())
    doc["peers"][0]["keepalive"] = 17  # concerns every gateway
    acme.write_text(json.dumps(doc, indent=1))
    lab.commit("acme keepalive 17")
    try:
        run = lab.playbook("rollout.yml")
    finally:
        inventory_path.write_text(saved)
        lab.gateways[1].run("ip", "addr", "del", f"{floating}/32", "dev", "lo")
    assert run.returncode == 0, run.stdout + run.stderr
    seen = [(task, host) for task, _, host in events(run.stdout) if task in (APPLY_TASK, CONFIRM_TASK)]
    assert seen == [(t, g) for g in ("gw-a", "gw-c", "gw-b") for t in (APPLY_TASK, CONFIRM_TASK)], seen
    plays = [line for line in run.stdout.splitlines() if line.startswith("PLAY [")]
    assert any("active node" in line for line in plays), plays
