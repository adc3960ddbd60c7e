"""Hostile tests of the table record (apply/tablerecord.py): ways to make plan, apply or revoke believe
STATE_DIR/nft-record.marshal although the kernel's table differs, and of the parse cache and the
secret scan that came with it.

Expectations come from the kernel (`nft get element`, real packets through the lab) or from a fresh
listing of the table (the same command with the record moved away), never from gatewayctl's compiler.

Defects found (each test was a strict xfail before its fix):
- an element add that the kernel commits as nothing (the element is there already, permanent: deny
  map entries, partner_nets) is counted as a transaction, so one foreign transaction that repeats it
  goes unseen: the record is written without the foreign change and later applies keep it open;
- the record keeps element ends in wall-clock time, the kernel's timers run on its own clock: after
  the wall clock steps forward (NTP correcting a clock that was behind; a suspend, during which the
  kernel's timers stand still), the record drops elements the kernel still holds for hours, so apply
  and revoke leave open what the profiles no longer grant (or what was just revoked); after it steps
  back, the record holds an element the kernel dropped, and revoke's one transaction is refused whole.
Fixed: a write that may commit nothing (only timeout-less elements added, only sets emptied) ends
the count (host/nft.py update_elements), and a record holds only while the wall clock keeps its
offset to the monotonic clock (host/generation.py proves).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import marshal
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewayctl.loader import parsecache
from gatewayctl.loader.yaml12 import read_document
from tests.conftest import PROFILES, REPO
from tests.lab_helpers import LabHandle, running_lab
from tests.netns import Namespace

RECORD = "nft-record.marshal"
ACME = "10.250.1.1"
BY_HAND = f"{ACME} . 10.1.0.20 . tcp . 443"  # acme reaches 10.1.0.20 on port 22 only (edi-sftp)
CRM = f"{ACME} . 10.1.0.5 . tcp . 443"  # acme's crm-api grant
GLOBEX_V6 = "fd00:250::2:1"  # a new address for globex-dc1; globex's services are IPv4 only: only a deny6 entry follows


# helpers --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("hostile-record") / "lab", PROFILES) as handle:
        yield handle


def settle(lab: LabHandle) -> None:
    """The table as the profiles say, from a listing, and a record of it (an apply with nothing to do writes one)."""
    (lab.state / RECORD).unlink(missing_ok=True)
    for _ in range(2):
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
    assert (lab.state / RECORD).exists()
    assert plan_json(lab)["revocations"] == [], "a revocation of a test is still in force"


@pytest.fixture
def gw(lab: LabHandle) -> Iterator[LabHandle]:
    settle(lab)
    yield lab
    settle(lab)


def nft(lab: LabHandle, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", lab.gw, "nft", *args], capture_output=True, text=True, check=check,
                          input=stdin, timeout=30)


def in_kernel(lab: LabHandle, set_name: str, element: str) -> bool:
    """Whether the kernel's table holds `element` in `set_name` (asked of nft, not of gatewayctl)."""
    return nft(lab, "get", "element", "inet", "gatewayctl", set_name, f"{{ {element} }}", check=False).returncode == 0


def table_read_by_last_apply(lab: LabHandle) -> str:
    entries = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()]
    return str([e for e in entries if e["event"] == "applied"][-1]["table_read"])


def plan_json(lab: LabHandle) -> dict[str, Any]:
    result = lab.ctl("plan", "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    return {k: v for k, v in json.loads(result.stdout).items() if k not in ("generated_at", "now")}


def plan_by_listing(lab: LabHandle) -> dict[str, Any]:
    record, aside = lab.state / RECORD, lab.state / "record-aside"
    if record.exists():
        shutil.move(record, aside)
    try:
        return plan_json(lab)
    finally:
        if aside.exists():
            shutil.move(aside, record)


def edit(lab: LabHandle, partner: str, change: Callable[[dict[str, Any]], None]) -> str:
    """Change a partner file (the lab writes them as JSON); returns the original text."""
    path = lab.profiles / "partners" / f"{partner}.yaml"
    original = path.read_text()
    doc = json.loads(original)
    change(doc)
    path.write_text(json.dumps(doc, indent=1))
    return original


def put_back(lab: LabHandle, partner: str, original: str) -> None:
    (lab.profiles / "partners" / f"{partner}.yaml").write_text(original)


def gatewayctl_process(lab: LabHandle, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), *args,
               "--netns", lab.gw, "--state-dir", str(lab.state)]
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def stepped(lab: LabHandle, offset_s: float, *args: str) -> subprocess.CompletedProcess[str]:
    """gatewayctl with the wall clock `offset_s` ahead of the kernel's (tests/hostile_record_clock.py)."""
    command = [sys.executable, "-m", "tests.hostile_record_clock", str(offset_s), "-q", "--profiles", str(lab.profiles),
               *args, "--netns", lab.gw, "--state-dir", str(lab.state)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)


def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def generation_of(namespace: str) -> tuple[str, int, int]:
    script = "import json;from gatewayctl.host import generation;print(json.dumps(generation.current()))"
    out = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=REPO)
    boot, cookie, gen = json.loads(out.stdout)
    return str(boot), int(cookie), int(gen)


# defects --------------------------------------------------------------------------------------------

def test_a_foreign_transaction_that_repeats_the_apply_s_element_is_not_hidden(gw: LabHandle) -> None:
    lab = gw
    original = edit(lab, "globex", lambda doc: doc["peers"][0]["addresses"].append(f"{GLOBEX_V6}/128"))
    try:
        assert not lab.reach("acme", "10.1.0.20", 443)
        proc = gatewayctl_process(lab, "apply", "--yes", env={"GATEWAYCTL_FAILPOINT": "after-peers:sleep=4"})
        # the apply has read the table and changed the peer; it sleeps before it adds the deny6 entry
        until(lambda: GLOBEX_V6 in lab.gw_run("wg", "show", lab.ifname, "allowed-ips"), 30, "the apply to change the peer")
        # someone else, in one transaction: the same deny6 entry, and an element by hand
        nft(lab, "-f", "-", stdin=f"add element inet gatewayctl deny6 {{ {GLOBEX_V6} : goto deny_globex }}\n"
                                  f'add element inet gatewayctl grants4 {{ {BY_HAND} comment "by hand" }}\n')
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert lab.reach("acme", "10.1.0.20", 443), "the element by hand should open the flow (else this proves nothing)"
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        assert not in_kernel(lab, "grants4", BY_HAND) and not lab.reach("acme", "10.1.0.20", 443), \
            f"the apply after a racing hand change left it open (table read from the {table_read_by_last_apply(lab)})"
    finally:
        put_back(lab, "globex", original)


def _expiring_crm(lab: LabHandle) -> tuple[str, float]:
    """acme's crm-api grant made to end at the next midnight UTC (or the one after, if that is near),
    applied with the true clock; returns the original file and how far ahead that end is."""
    now = dt.datetime.now(dt.UTC)
    end = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    if end - now < dt.timedelta(minutes=15):
        end += dt.timedelta(days=1)

    def expire(doc: dict[str, Any]) -> None:
        for grant in doc["grants"]:
            if grant["service"] == "crm-api":
                grant["expires"] = (end - dt.timedelta(days=1)).date().isoformat()

    original = edit(lab, "acme", expire)
    result = lab.ctl("apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (lab.state / RECORD).exists(), "an element change is recorded"
    assert in_kernel(lab, "grants4", CRM) and lab.reach("acme", "10.1.0.5", 443)
    return original, (end - dt.datetime.now(dt.UTC)).total_seconds()


def test_after_the_clock_steps_past_a_grant_s_end_apply_closes_it(gw: LabHandle) -> None:
    lab = gw
    original, ahead = _expiring_crm(lab)
    try:
        step = ahead + 300  # the host's clock now says the grant ended five minutes ago
        result = stepped(lab, step, "apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        # the kernel's timer for the element still runs for about `step` seconds: the apply must delete it
        assert not in_kernel(lab, "grants4", CRM) and not lab.reach("acme", "10.1.0.5", 443), \
            f"crm-api stays open after its end (table read from the {table_read_by_last_apply(lab)})"
    finally:
        put_back(lab, "acme", original)


def test_after_the_clock_steps_revoke_closes_every_grant_of_the_partner(gw: LabHandle) -> None:
    lab = gw
    original, ahead = _expiring_crm(lab)
    try:
        result = stepped(lab, ahead + 300, "revoke", "acme", "--reason", "INC-1: hostile test")
        assert result.returncode == 0, result.stdout + result.stderr
        assert not lab.reach("acme", "10.1.0.20", 22), "the revocation did not close edi-sftp either"
        assert not in_kernel(lab, "grants4", CRM) and not lab.reach("acme", "10.1.0.5", 443), "crm-api stays open after revoke"
    finally:
        put_back(lab, "acme", original)
        lab.ctl("revoke", "--lift", "acme", "--netns", lab.gw, "--state-dir", str(lab.state))  # none, if revoke failed


def test_after_the_clock_steps_back_revoke_still_closes_the_partner(gw: LabHandle) -> None:
    lab = gw
    end = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2), dt.time(), dt.UTC)

    def expire(doc: dict[str, Any]) -> None:
        for grant in doc["grants"]:
            if grant["service"] == "crm-api":
                grant["expires"] = (end - dt.timedelta(days=1)).date().isoformat()

    original = edit(lab, "acme", expire)
    try:  # crm-api's kernel timer: 4 s (apply --at, as for a grant ending then); it runs out with nothing running
        result = lab.ctl("apply", "--yes", "--at", (end - dt.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert result.returncode == 0 and (lab.state / RECORD).exists(), result.stdout + result.stderr
        until(lambda: not in_kernel(lab, "grants4", CRM), 15, "crm-api's kernel timer to run out")
        assert lab.reach("acme", "10.1.0.20", 22)
        revoked = stepped(lab, -3600, "revoke", "acme", "--reason", "INC-3: hostile test")
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        assert not lab.reach("acme", "10.1.0.20", 22), "edi-sftp stays open after revoke"
    finally:
        put_back(lab, "acme", original)
        lab.ctl("revoke", "--lift", "acme", "--netns", lab.gw, "--state-dir", str(lab.state))


# attacks that hold ----------------------------------------------------------------------------------

def test_a_rule_inserted_by_hand_is_seen_although_a_record_is_there(gw: LabHandle) -> None:
    lab = gw
    assert not lab.reach("acme", "10.1.0.20", 443)
    nft(lab, "-f", "-", stdin=f"insert rule inet gatewayctl partner_in ip saddr {ACME} accept\n"
                              f"insert rule inet gatewayctl partner_out ip daddr {ACME} accept\n")
    assert lab.reach("acme", "10.1.0.20", 443), "the rule by hand should open the flow (else this proves nothing)"
    assert plan_json(lab) == plan_by_listing(lab)
    result = lab.ctl("apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_read_by_last_apply(lab) == "listed"
    assert not lab.reach("acme", "10.1.0.20", 443)


def test_counters_reset_and_the_flow_cache_filling_leave_the_record_true(gw: LabHandle) -> None:
    """What changes without a transaction (element and rule counters, `nft reset`, the packet path adding
    to seen4) does not move the generation; the record is still believed and still plans as a listing."""
    lab = gw
    before = generation_of(lab.gw)
    assert marshal.loads((lab.state / RECORD).read_bytes())["generation"] == list(before), "the record is in force"
    assert lab.reach("globex", "10.1.0.21", 8001)  # a port range grant: the flow goes into seen4
    nft(lab, "reset", "counters", "table", "inet", "gatewayctl")
    assert generation_of(lab.gw) == before, "nothing committed: the record stays in force"
    assert plan_json(lab) == plan_by_listing(lab)
    drift = lab.ctl("drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr


def test_a_revoke_keeps_the_record_true(gw: LabHandle) -> None:
    lab = gw
    assert lab.reach("acme", "10.1.0.20", 22)
    result = lab.ctl("revoke", "acme", "--grant", "edi-sftp", "--reason", "INC-2: hostile test",
                     "--netns", lab.gw, "--state-dir", str(lab.state))
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        assert not lab.reach("acme", "10.1.0.20", 22) and not in_kernel(lab, "grants4", f"{ACME} . 10.1.0.20 . tcp . 22")
        assert plan_json(lab) == plan_by_listing(lab)
        again = lab.ctl("apply", "--yes")
        assert again.returncode == 0, again.stdout + again.stderr
        assert not lab.reach("acme", "10.1.0.20", 22), "apply reopened a revoked grant"
    finally:
        lift = lab.ctl("revoke", "--lift", "acme", "--grant", "edi-sftp", "--netns", lab.gw, "--state-dir", str(lab.state))
        assert lift.returncode == 0, lift.stdout + lift.stderr
    reopen = lab.ctl("apply", "--yes")
    assert reopen.returncode == 0 and lab.reach("acme", "10.1.0.20", 22), reopen.stdout + reopen.stderr


def test_an_apply_killed_after_its_commit_leaves_no_record_in_force(gw: LabHandle) -> None:
    lab = gw
    original = edit(lab, "acme", lambda doc: doc["grants"].pop(1))  # edi-sftp goes
    try:
        proc = gatewayctl_process(lab, "apply", "--yes", env={"GATEWAYCTL_FAILPOINT": "after-widen:sleep=30"})
        until(lambda: not in_kernel(lab, "grants4", f"{ACME} . 10.1.0.20 . tcp . 22"), 30, "the apply to commit")
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)  # between the commit and the record
        proc.communicate(timeout=30)
        put_back(lab, "acme", original)  # the grant is back in the profiles: the next apply must see it missing
        planned = plan_json(lab)
        assert planned == plan_by_listing(lab)
        assert any(c["sign"] == "+" and "10.1.0.20 tcp/22" in c["detail"] for c in planned["changes"]), planned["changes"]
        result = lab.ctl("apply", "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        assert table_read_by_last_apply(lab) == "listed" and lab.reach("acme", "10.1.0.20", 22)
    finally:
        put_back(lab, "acme", original)


def test_a_record_taken_to_another_namespace_at_the_same_generation_id_is_not_believed(gw: LabHandle, tmp_path: Path) -> None:
    """A state folder copied to another gateway (or a namespace made again) whose generation id happens to
    be the record's: the namespace cookie tells them apart, and the plan sees the table is not there."""
    lab = gw
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for name in ("applied.json", RECORD):
        shutil.copy2(lab.state / name, state / name)
    wanted = marshal.loads((state / RECORD).read_bytes())["generation"][2]
    with Namespace.create("hrr") as other:
        gen = generation_of(other.name)[2]
        assert gen <= wanted, (gen, wanted)
        for i in range(wanted - gen):
            other.run("nft", "add" if i % 2 == 0 else "delete", "table", "inet", "hostile_bump")
        assert generation_of(other.name)[2] == wanted
        result = subprocess.run([sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(lab.profiles), "plan",
                                 "--format", "json", "--netns", other.name, "--state-dir", str(state)],
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode in (0, 1, 2), result.stderr  # 2: blockers (forwarding is off in this namespace)
        changes = json.loads(result.stdout)["changes"]
        assert any(c["kind"] == "table-missing" for c in changes), changes


# the secret scan and the parse cache --------------------------------------------------------------

def test_keys_in_loaded_profile_files_are_still_found(tmp_path: Path) -> None:
    """lint scans the loaded files' text from memory now: a key inside a partner file and a PEM key inside
    gateway.yaml (both files the loader read) are found as they were when the scan read the disk."""
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    acme = profiles / "partners" / "acme.yaml"
    acme.write_text(acme.read_text() + f"# PrivateKey = {key}\n")
    gateway = profiles / "gateway.yaml"
    gateway.write_bytes(b"\xef\xbb\xbf" + gateway.read_bytes() + b"# -----BEGIN OPENSSH PRIVATE KEY-----\n")
    result = subprocess.run([sys.executable, "-m", "gatewayctl", "--profiles", str(profiles), "lint"], capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "GATEWAYCTL_PARSE_CACHE": "off"})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert any("acme.yaml" in line and "GW802" in line for line in out.splitlines()), out
    assert any("gateway.yaml" in line and "GW801" in line for line in out.splitlines()), out


@pytest.mark.parametrize("spoil", ["folder-writable-by-others", "cache-base-of-another-user", "file-of-another-user"])
def test_a_parse_cache_someone_else_could_write_is_not_believed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                spoil: str) -> None:
    """A cache entry says acme's file means something else (a grant more). Believed only where nobody but
    this user could have written it; in each spoiled place the file is parsed again."""
    base = tmp_path / "cache"
    folder = base / "gatewayctl" / "parse"
    folder.mkdir(parents=True, mode=0o700)
    for step in (base, base / "gatewayctl", folder):
        os.chmod(step, 0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    monkeypatch.delenv(parsecache.ENV, raising=False)
    path = tmp_path / "acme.yaml"
    text = "id: acme\ngrants:\n  - service: crm-api\n"
    path.write_text(text)
    truth = {"id": "acme", "grants": [{"service": "crm-api"}]}
    lie = {"id": "acme", "grants": [{"service": "crm-api"}, {"service": "erp-db"}]}
    version = parsecache._version()
    entry = hashlib.sha256(version + text.encode()).digest()
    cache = folder / parsecache.FILE
    cache.write_bytes(marshal.dumps((version, {entry: marshal.dumps(lie)})))
    os.chmod(cache, 0o600)

    def parsed() -> Any:
        parsecache.reset()
        try:
            return read_document(path, path.name).data
        finally:
            parsecache.reset()

    assert parsed() == lie, "control: in this user's private folder the entry is believed (so the spoiled cases test something)"
    if spoil == "folder-writable-by-others":
        os.chmod(folder, 0o777)
    elif spoil == "cache-base-of-another-user":
        os.chown(base, 65534, 65534)
    else:
        os.chown(cache, 65534, 65534)
    assert parsed() == truth
