"""A partner-scoped apply (gatewayctl/apply/scoped.py) is held to a whole apply of the same change.

Every case starts from the same state: the test's own estate written out and applied whole (`apply
--whole`), which leaves the basis (apply/basis.py) and the table record. Then one change is made to the
profiles and applied twice, each time from that same state: once as `apply` (scoped when the change
allows it, which the journal's `scope` shows), once as `apply --whole`. The two must agree exactly:
exit status, output, applied.json (but its time), the journal entry, and the host as the kernel and
wireguard-go list it (every set element with its comment, the chains, every peer with its allowed
IPs, endpoint, keepalive and preshared key). The whole apply is the reference: it is the code path
the rest of the suite (and the real-packet tests) hold to what the profiles say.

Real nftables and wireguard-go, in a namespace of the test's own; keys generated at run time.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gatewayctl.apply import basis
from tests.netns import Namespace, unique

REPO = Path(__file__).resolve().parent.parent
TODAY = dt.datetime.now(dt.UTC).date()


def _key() -> tuple[str, str]:
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def _service(addresses: list[str], protocol: str, ports: list[Any] | None, classification: str = "internal") -> dict[str, Any]:
    doc: dict[str, Any] = {"owner": "Platform <platform@example.com>", "classification": classification,
                           "addresses": addresses, "protocol": protocol}
    if ports is not None:
        doc["ports"] = ports
    return doc


def _grant(service: str, **extra: Any) -> dict[str, Any]:
    return {"service": service, "justification": "contract test", "approved_by": "Test Owner",
            "expires": str(TODAY + dt.timedelta(days=200)), **extra}


def _partner(pid: str, stage: str, peers: list[dict[str, Any]], grants: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": pid, "name": f"Partner {pid}", "stage": stage,
            "contacts": [{"name": "NOC", "email": f"noc@{pid}.example", "role": "security"}],
            "agreement": {"reference": f"AGR-{pid}", "expires": str(TODAY + dt.timedelta(days=400))},
            "peers": peers, "grants": grants}


@dataclass
class Site:
    """The test's gateway: its namespace, estate folder, state folder and generated keys."""

    ns: str
    ifname: str
    root: Path
    profiles: Path
    state: Path
    psk_dir: Path
    gateway_key: Path
    base: dict[str, Any]
    psks: dict[str, str]  # preshared key files (in psk_dir) by name

    def files(self) -> dict[str, Any]:
        return copy.deepcopy(self.base)

    def write(self, files: dict[str, Any], keys: bool = True) -> None:
        """The profiles folder as `files` says; only files whose text differs are written (or removed).
        The preshared key files are put back as they were, too."""
        rewritten = False
        for name, text in self.psks.items() if keys else ():
            path = self.psk_dir / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                os.chmod(path, 0o600)
                rewritten = True
        if rewritten:  # a scoped apply does not read key files again: their times must tell (apply/basis.py)
            time.sleep(2.1)
        (self.profiles / "partners").mkdir(parents=True, exist_ok=True)
        for path in sorted(self.profiles.rglob("*.yaml")):
            if str(path.relative_to(self.profiles)) not in files:
                path.unlink()
        for rel, doc in files.items():
            text = json.dumps(doc, indent=1) + "\n"
            path = self.profiles / rel
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    def gatewayctl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gatewayctl", "--profiles", str(self.profiles), *args],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                              env={**os.environ, "NO_COLOR": "1", **(env or {})})

    def apply(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.gatewayctl("apply", "--netns", self.ns, "--state-dir", str(self.state), "--yes", *extra, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if os.geteuid() != 0 or shutil.which("wireguard-go") is None or shutil.which("nft") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root, nft and wireguard-go: CI must provide them")
        pytest.skip("needs root, nft and wireguard-go")
    root = tmp_path_factory.mktemp("scoped")
    psk_dir = root / "psk"
    psk_dir.mkdir(mode=0o700)
    psks = {f"{name}.psk": base64.b64encode(os.urandom(32)).decode() + "\n" for name in ("e1", "e2")}
    for name, text in psks.items():
        (psk_dir / name).write_text(text)
        os.chmod(psk_dir / name, 0o600)
    private, public = _key()
    gateway_key = root / "gateway.key"
    gateway_key.write_text(private + "\n")
    os.chmod(gateway_key, 0o600)
    ifname = unique("wgs")
    gateway = {
        "name": "gw-scoped",
        "wireguard": {"interface": ifname, "listen_port": 51820, "addresses": ["100.64.0.1/10", "fd00:64::1/64"],
                      "pool": ["100.64.0.0/10", "fd00:64::/64"], "endpoint": "gw.example.net:51820",
                      "public_key": public, "private_key_file": str(gateway_key)},
        "internal_networks": ["10.0.0.0/9", "fd00:10::/48"],
        "classifications": ["public", "internal", "confidential", "restricted"],
        "stages": {"pilot": {"classifications": ["public"]},
                   "partner": {"classifications": ["public", "internal", "confidential", "restricted"]}},
        "deny_logging": {"per_partner": True},
        "host": {"preshared_key_dir": str(psk_dir)},
    }
    services = {"services": {
        "web": _service(["10.1.0.10/32"], "tcp", [443]),
        "files": _service(["10.1.0.11/32"], "tcp", ["8000-8003"]),
        "ping": _service(["10.1.0.12/32"], "icmp", None, "public"),
        "db": _service(["10.1.0.13/32", "10.1.0.14/32"], "tcp", [5432, 5433], "confidential"),
        "net": _service(["10.1.1.0/28"], "udp", [514]),
        "web6": _service(["fd00:10::5/128"], "tcp", [443]),
        "public-web": _service(["10.1.0.20/32"], "tcp", [80], "public"),
    }}

    def peer(name: str, *addresses: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "public_key": _key()[1], "addresses": list(addresses), **extra}

    partners = {
        "pa": _partner("pa", "partner", [peer("hq", "100.64.1.1/32", keepalive=25)],
                       [_grant("web"), _grant("files"), _grant("ping"), _grant("db")]),
        "pb": _partner("pb", "partner", [peer("dc", "100.64.1.2/32", networks=["10.200.2.0/24"])],
                       [_grant("db"), _grant("net"), _grant("public-web")]),
        "pc": _partner("pc", "partner", [peer("v6", "100.64.1.3/32", "fd00:64::3/128")],
                       [_grant("web6"), _grant("web")]),
        "pd": _partner("pd", "partner", [peer("one", "100.64.1.4/32", endpoint="192.0.2.4:51820"),
                                         peer("two", "100.64.1.5/32")],
                       [_grant("files", ports=[8001]), _grant("ping")]),
        "pe": _partner("pe", "partner", [peer("k", "100.64.1.6/32", preshared_key_file="e1.psk")],
                       [_grant("web"), _grant("db", expires=str(TODAY + dt.timedelta(days=30)))]),
        "pf": _partner("pf", "pilot", [peer("p", "100.64.1.7/32")], [_grant("public-web"), _grant("web")]),
        "pg": _partner("pg", "partner", [peer("g", "100.64.1.8/32")], [_grant("net"), _grant("ping")]),
    }
    base = {"gateway.yaml": gateway, "services.yaml": services,
            **{f"partners/{pid}.yaml": doc for pid, doc in partners.items()}}
    time.sleep(2.1)  # key files are not read again by a scoped apply: their times must tell (apply/basis.py)
    ns = Namespace.create("gws")
    try:
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        yield Site(ns.name, ifname, root, root / "profiles", root / "state", psk_dir, gateway_key, base, psks)
    finally:
        for pidfile in (root / "state").glob("wireguard-go-*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        ns.close()


def _host(site: Site) -> dict[str, Any]:
    """The host as the kernel and wireguard-go list it (timers left out: they count down)."""
    listed = json.loads(subprocess.run(["ip", "netns", "exec", site.ns, "nft", "-j", "list", "table", "inet", "gatewayctl"],
                                       capture_output=True, text=True, check=True).stdout)
    sets: dict[str, list[str]] = {}
    chains: dict[str, list[str]] = {}
    for item in listed["nftables"]:
        if "set" in item or "map" in item:
            data = item.get("set") or item.get("map")
            sets[data["name"]] = sorted(json.dumps(_untimed(e), sort_keys=True) for e in data.get("elem", []))
        elif "rule" in item:
            chains.setdefault(item["rule"]["chain"], []).append(json.dumps(item["rule"]["expr"], sort_keys=True))
        elif "chain" in item:
            chains.setdefault(item["chain"]["name"], [])
    dump = subprocess.run(["ip", "netns", "exec", site.ns, "wg", "show", site.ifname, "dump"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    peers = sorted("\t".join(line.split("\t")[i] for i in (0, 1, 2, 3, 7)) for line in dump[1:])  # key, psk, endpoint, ips, keepalive
    return {"sets": sets, "chains": chains, "peers": peers, "device": dump[0].split("\t")[1:3]}


def _untimed(element: Any) -> Any:
    if isinstance(element, dict) and "elem" in element:
        return {k: v for k, v in element["elem"].items() if k not in ("expires", "timeout")}
    return element


def _outcome(site: Site, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    applied = json.loads((site.state / "applied.json").read_text())
    at = applied.pop("applied_at")
    head, _, rest = applied["ruleset_skeleton"].partition("\n\n")
    assert f"compiled for {at}." in head  # the skeleton's header names this apply's instant, and only there
    applied["ruleset_skeleton"] = head.replace(at, "(the apply's instant)") + "\n\n" + rest
    entry = json.loads((site.state / "journal.jsonl").read_text().splitlines()[-1])
    scope = entry.pop("scope", None)
    entry.pop("time")
    stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("apply: "))
    # a timer's end is shown to the minute from the seconds the kernel has left, read a fraction of a
    # second apart in the two applies: 23:59 in one can be 00:00 in the other
    stdout = re.sub(r"kernel timer ends \S+ \S+Z", "kernel timer ends (then)", result.stdout)
    stdout = re.sub(r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ:", " at (the revocation's time):", stdout)
    if "no changes: the host matches the profiles" in stdout:  # applied.json is not written again: its
        applied.pop("changes")  # record of the apply that last changed something is the case's history
    if "planning those partners alone" in result.stderr:
        scope = scope or "(nothing to do: not journaled)"
    return {"rc": result.returncode, "stdout": stdout, "stderr": stderr, "applied": applied,
            "journal": entry, "host": _host(site), "scope": scope, "said": result.stderr}


def _reset(site: Site, files: dict[str, Any]) -> None:
    """The test's estate, applied whole: the state every case starts from."""
    site.write(files)
    (site.state / "revocations.json").unlink(missing_ok=True)  # none in force: a case revokes what it needs
    for _ in range(2):  # an apply that loads the whole table leaves no record of it: the next one lists it and keeps one
        result = site.apply("--whole")
        assert result.returncode == 0, result.stderr
    assert basis.load(site.state) is not None, "a whole apply keeps the basis for the next one"


Change = Callable[[Site, dict[str, Any]], None]


def _both(site: Site, change: Change, before: Callable[[Site], None] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outcome of the change applied as `apply` (scoped where it can be), then as `apply --whole`,
    each from the same starting state."""
    outcomes = []
    for extra in ((), ("--whole",)):
        files = site.files()
        _reset(site, files)
        if before is not None:
            before(site)
        change(site, files)
        site.write(files, keys=False)
        outcomes.append(_outcome(site, site.apply("-v", *extra)))
    return outcomes[0], outcomes[1]


def _assert_same(scoped: dict[str, Any], whole: dict[str, Any]) -> None:
    assert whole["scope"] is None
    for key in ("rc", "stdout", "stderr", "journal", "applied", "host"):
        assert scoped[key] == whole[key], key


def partner(files: dict[str, Any], pid: str) -> dict[str, Any]:
    doc: dict[str, Any] = files[f"partners/{pid}.yaml"]
    return doc


SCOPED_CASES: dict[str, Change] = {
    "a grant removed, a keepalive changed": lambda s, f: (partner(f, "pa")["grants"].pop(0),
                                                         partner(f, "pa")["peers"][0].update(keepalive=15)),
    "a grant added": lambda s, f: partner(f, "pb")["grants"].append(_grant("web")),
    "ports narrowed": lambda s, f: partner(f, "pa")["grants"][1].update(ports=["8001-8002"]),
    "a service's second address, by narrowing ports": lambda s, f: partner(f, "pa")["grants"][3].update(ports=[5433]),
    "an expiry moved": lambda s, f: partner(f, "pe")["grants"][1].update(expires=str(TODAY + dt.timedelta(days=90))),
    "a grant ended yesterday": lambda s, f: partner(f, "pg")["grants"][0].update(expires=str(TODAY - dt.timedelta(days=1))),
    "the stage lowered": lambda s, f: partner(f, "pb").update(stage="pilot"),
    "the stage raised": lambda s, f: partner(f, "pf").update(stage="partner"),
    "two partners at once": lambda s, f: (partner(f, "pd")["grants"].pop(), partner(f, "pg")["grants"].append(_grant("db"))),
    "words only": lambda s, f: partner(f, "pe")["grants"][0].update(justification="reworded (CHG-1)"),
    "every grant removed": lambda s, f: partner(f, "pd").update(grants=[]),
    "ipv6 grant removed": lambda s, f: partner(f, "pc")["grants"].pop(0),
}


@pytest.mark.parametrize("name", sorted(SCOPED_CASES))
def test_a_scoped_apply_is_the_whole_apply_of_the_same_change(site: Site, name: str) -> None:
    scoped, whole = _both(site, SCOPED_CASES[name])
    assert scoped["scope"] is not None, f"{name}: expected a partner-scoped apply ({scoped['said']})"
    _assert_same(scoped, whole)


NEW_KEYS = [_key()[1] for _ in range(2)]  # the same in both applies of a case
NEW_PSK = base64.b64encode(os.urandom(32)).decode() + "\n"
WHOLE_CASES: dict[str, Change] = {
    "an endpoint changed (the partners' checks look at it)": lambda s, f: partner(f, "pd")["peers"][0].update(
        endpoint="192.0.2.44:51820"),
    "a tunnel address changed": lambda s, f: partner(f, "pg")["peers"][0].update(addresses=["100.64.1.9/32"]),
    "a peer added": lambda s, f: partner(f, "pd")["peers"].append({"name": "three", "public_key": NEW_KEYS[0],
                                                                     "addresses": ["100.64.1.10/32"]}),
    "a partner added": lambda s, f: f.update({"partners/ph.yaml": _partner(
        "ph", "partner", [{"name": "h", "public_key": NEW_KEYS[1], "addresses": ["100.64.1.11/32"]}], [_grant("web")])}),
    "a partner removed": lambda s, f: f.pop("partners/pg.yaml"),
    "the service catalogue changed": lambda s, f: f["services.yaml"]["services"]["web"].update(ports=[443, 8443]),
    "a preshared key rotated": lambda s, f: (s.psk_dir / "e1.psk").write_text(NEW_PSK),
    "the agreement ended (lint: an error)": lambda s, f: (
        partner(f, "pc")["agreement"].update(expires=str(TODAY - dt.timedelta(days=1))),
        [g.update(expires=str(TODAY - dt.timedelta(days=2))) for g in partner(f, "pc")["grants"]]),
    "an unknown service (an error)": lambda s, f: partner(f, "pa")["grants"].append(_grant("nope")),
    "a grant beyond the stage, with a changed file": lambda s, f: partner(f, "pf")["grants"].append(_grant("db")),
}


@pytest.mark.parametrize("name", sorted(WHOLE_CASES))
def test_what_a_scoped_apply_cannot_see_is_applied_whole(site: Site, name: str) -> None:
    scoped, whole = _both(site, WHOLE_CASES[name])
    if name.startswith("a grant beyond the stage"):  # a partner's own ceiling: scoped, and the same
        assert scoped["scope"] is not None, scoped["said"]
    else:
        assert scoped["scope"] is None, f"{name}: expected a whole apply"
    _assert_same(scoped, whole)


def test_a_revocation_in_force_is_kept_by_a_scoped_apply(site: Site) -> None:
    def revoke_then_apply(s: Site) -> None:
        done = s.gatewayctl("revoke", "pa", "--grant", "web", "--reason", "contract test",
                            "--netns", s.ns, "--state-dir", str(s.state))
        assert done.returncode == 0, done.stderr
        again = s.apply("--whole")  # the revocation changed the state folder: the next apply is whole, and keeps the basis
        assert again.returncode == 0, again.stderr

    def change(s: Site, f: dict[str, Any]) -> None:
        partner(f, "pa")["peers"][0].update(keepalive=40)
        partner(f, "pa")["grants"][1].update(ports=[8000])

    scoped, whole = _both(site, change, revoke_then_apply)
    assert scoped["scope"] == ["pa"]
    _assert_same(scoped, whole)
    assert "revoked on this gateway" in scoped["stdout"] and "pa/web" in scoped["stdout"]


def test_a_revocation_ends_when_a_scoped_apply_takes_its_grant_away(site: Site) -> None:
    def revoke_then_apply(s: Site) -> None:
        assert s.gatewayctl("revoke", "pe", "--grant", "db", "--reason", "contract test", "--netns", s.ns,
                            "--state-dir", str(s.state)).returncode == 0
        assert s.apply("--whole").returncode == 0

    scoped, whole = _both(site, lambda s, f: partner(f, "pe")["grants"].pop(1), revoke_then_apply)
    assert scoped["scope"] is not None, scoped["said"]  # nothing left to change on the host: the revocation just ends
    _assert_same(scoped, whole)
    assert "revocation of pe/db ended" in scoped["stdout"]
    assert json.loads((site.state / "revocations.json").read_text())["revocations"] == []


def test_after_revoke_restore_or_a_hand_change_the_next_apply_is_whole(site: Site) -> None:
    files = site.files()
    _reset(site, files)
    assert site.gatewayctl("revoke", "pb", "--reason", "test", "--netns", site.ns, "--state-dir", str(site.state)).returncode == 0
    partner(files, "pa")["grants"].pop()
    site.write(files)
    result = site.apply("-v")
    assert result.returncode == 0 and "planning the whole estate (applied.json changed" in result.stderr
    assert site.gatewayctl("revoke", "--lift", "pb", "--netns", site.ns, "--state-dir", str(site.state)).returncode == 0
    partner(files, "pa")["grants"].pop()
    site.write(files)
    result = site.apply("-v")
    assert "planning the whole estate (the revocations changed" in result.stderr
    # an element added by hand: the generation no longer proves the record, so the table is listed and planned whole
    subprocess.run(["ip", "netns", "exec", site.ns, "nft", "add", "element", "inet", "gatewayctl", "grants4",
                    "{ 100.64.1.1 . 10.1.0.20 . tcp . 80 }"], check=True)
    partner(files, "pa")["peers"][0].update(keepalive=33)
    site.write(files)
    result = site.apply("-v")
    assert result.returncode == 0 and "planning the whole estate (the table changed" in result.stderr
    assert "100.64.1.1 -> 10.1.0.20 tcp/80" in result.stdout  # the whole plan takes the hand-made element out
    assert '"100.64.1.1 . 10.1.0.20 . tcp . 80"' not in json.dumps(_host(site))


def test_a_file_changed_while_it_was_read_counts_as_changed_next_time(site: Site) -> None:
    files = site.files()
    _reset(site, files)
    kept = basis.load(site.state)
    assert kept is not None and all(entry is not None for entry in kept.files.values())
    now = basis.tree(site.profiles, basis.racy_threshold(time.time_ns() + 10**10))  # every file's times tell
    # what the basis holds is still true of every file: its stat, or the digest of its text (a file
    # written within two seconds of the apply's first read: its times cannot tell)
    assert all(basis.same(kept.files[rel], stat, site.profiles / rel) is not None for rel, stat in now.items())
    path = site.profiles / "partners" / "pa.yaml"
    rel = "partners/pa.yaml"
    path.write_text(path.read_text().replace("contract test", "contract test, reworded"))
    racy = basis.tree(site.profiles, basis.racy_threshold(time.time_ns()))
    assert racy[rel] is None  # changed just now: its times say nothing
    assert basis.same(kept.files[rel], racy[rel], path) is None  # and its text is not the one compiled
    assert basis.same(basis.text_digest(path.read_bytes()), None, path) == basis.text_digest(path.read_bytes())


def test_another_partners_peer_changed_by_hand_is_left_to_drift_and_a_whole_apply(site: Site) -> None:
    """What a scoped apply does not look at (docs/operations.md): a peer of an unchanged partner
    removed by hand on the device stays removed; drift names it; `apply --whole` puts it back."""
    files = site.files()
    _reset(site, files)
    key = partner(files, "pg")["peers"][0]["public_key"]
    subprocess.run(["ip", "netns", "exec", site.ns, "wg", "set", site.ifname, "peer", key, "remove"], check=True)
    partner(files, "pa")["peers"][0].update(keepalive=17)
    site.write(files)
    result = site.apply()
    assert result.returncode == 0 and "planning those partners alone" in result.stderr
    assert "pg/" not in result.stdout
    assert not any(line.startswith(key) for line in _host(site)["peers"])
    drift = site.gatewayctl("drift", "--netns", site.ns, "--state-dir", str(site.state))
    assert drift.returncode == 1 and "pg/g" in drift.stdout, drift.stdout
    whole = site.apply("--whole")
    assert whole.returncode == 0 and "+ peer pg/g" in whole.stdout, whole.stdout
    assert any(line.startswith(key) for line in _host(site)["peers"])


@pytest.mark.parametrize(("edit", "reason"), [
    ({"ca_end": 1.0}, "a CA certificate of the estate has expired since"),
    ({"endpoints": {"k": ("localhost:51820", "192.0.2.99:51820")}}, "the endpoint localhost:51820 resolves to another address"),
    ({"stamp": ("other code", "", "", "")}, "other code, profiles folder or day"),
])
def test_what_can_change_without_a_file_changing_makes_the_apply_whole(site: Site, edit: dict[str, Any],
                                                                       reason: str) -> None:
    """A CA that expired since (lint's GW701 looks at every partner's CAs at the instant), a host name
    that resolves to another address now (a whole apply resolves every endpoint), other code."""
    files = site.files()
    _reset(site, files)
    kept = basis.load(site.state)
    assert kept is not None and kept.ca_end is None and kept.endpoints == {}  # the test's estate has neither
    basis.save(site.state, dataclasses.replace(kept, **edit))
    partner(files, "pa")["peers"][0].update(keepalive=19)
    site.write(files)
    result = site.apply("-v")
    assert result.returncode == 0 and f"planning the whole estate ({reason}" in result.stderr, result.stderr


def _inject(site: Site, src: str, dst: str, dport: int, sport: int) -> None:
    subprocess.run(["ip", "netns", "exec", site.ns, "conntrack", "-I", "-p", "tcp", "-s", src, "-d", dst,
                    "--sport", str(sport), "--dport", str(dport), "-r", dst, "-q", src, "--reply-port-src", str(dport),
                    "--reply-port-dst", str(sport), "--state", "ESTABLISHED", "-t", "600", "-u", "SEEN_REPLY,ASSURED"],
                   check=True, capture_output=True)


def _tracked(site: Site) -> set[tuple[str, str, str]]:
    listing = subprocess.run(["ip", "netns", "exec", site.ns, "conntrack", "-L", "-p", "tcp"], capture_output=True,
                             text=True, check=True).stdout
    found = set()
    for line in listing.splitlines():
        fields: dict[str, str] = {}
        for part in line.split():
            if "=" in part:
                key, value = part.split("=", 1)
                fields.setdefault(key, value)  # the first of each: the original direction
        found.add((fields["src"], fields["dst"], fields["dport"]))
    return found


def test_a_scoped_apply_ends_every_flow_nothing_allows_as_a_whole_apply_does(site: Site) -> None:
    """Its conntrack step judges every tracked flow against the whole table in force, not only the
    changed partner's: another partner's flow that no grant covers goes, a covered one stays."""
    outcomes = []
    for extra in ((), ("--whole",)):
        files = site.files()
        _reset(site, files)
        subprocess.run(["ip", "netns", "exec", site.ns, "conntrack", "-F"], check=True, capture_output=True)  # the test's own
        _inject(site, "100.64.1.8", "10.1.0.10", 443, 40001)  # pg has no grant of web: nothing allows it
        _inject(site, "100.64.1.2", "10.1.0.13", 5432, 40002)  # pb's db grant allows it
        _inject(site, "100.64.1.1", "10.1.0.10", 443, 40003)  # pa's web grant, removed by the change
        partner(files, "pa")["grants"].pop(0)
        site.write(files)
        result = site.apply(*extra)
        assert result.returncode == 0, result.stderr
        outcomes.append((("planning those partners alone" in result.stderr), result.stdout, _tracked(site)))
    (scoped, scoped_out, scoped_left), (whole, whole_out, whole_left) = outcomes
    assert scoped and not whole
    assert "closed 2 open connection(s)" in scoped_out and scoped_out == whole_out
    assert ("100.64.1.2", "10.1.0.13", "5432") in scoped_left
    assert not {("100.64.1.8", "10.1.0.10", "443"), ("100.64.1.1", "10.1.0.10", "443")} & scoped_left
    assert scoped_left == whole_left


@pytest.mark.parametrize("point", ["after-narrow", "after-peers", "before-widen", "after-widen"])
def test_a_scoped_apply_that_fails_leaves_the_host_and_its_record_as_they_were(site: Site, point: str) -> None:
    """A failure at any step of a scoped apply rolls back as a whole apply's does: the host as the
    kernel and wireguard-go list it, applied.json and the table it planned from are as before; the
    basis is gone, so the next apply is whole (and succeeds)."""
    files = site.files()
    _reset(site, files)
    before, applied = _host(site), (site.state / "applied.json").read_text()
    partner(files, "pa")["grants"].pop(0)  # narrows
    partner(files, "pa")["grants"].append(_grant("public-web"))  # widens
    partner(files, "pa")["peers"][0].update(keepalive=12)  # a peer change
    site.write(files)
    failed = site.apply(env={"GATEWAYCTL_FAILPOINT": f"{point}:raise"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "planning those partners alone" in failed.stderr and "restored" in failed.stderr, failed.stderr
    assert _host(site) == before
    assert (site.state / "applied.json").read_text() == applied
    assert basis.load(site.state) is None
    again = site.apply("-v")
    assert again.returncode == 0 and "planning the whole estate (no record of the last apply" in again.stderr
