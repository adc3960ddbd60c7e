"""A fleet of real gateways reached over SSH, for the Ansible collection's tests (tests/test_ansible.py).

Each gateway is a network namespace with its own sshd on an underlay address (192.0.2.1x), and
gatewayctl applies to it a small estate of three gateways kept in git. The Ansible controller runs in
a namespace of its own on the same underlay switch, so nothing is added to the machine's own network.
Every key (SSH client, SSH host, WireGuard) is made at run time. Processes we start are stopped by
PID; wireguard-go started by gatewayctl is stopped by the PID it wrote in the state folder.

The estate (tests/sshlab_estate.py writes it; tests state their expectations from this description):
- gateways gw-a, gw-b, gw-c: pools 10.201/16, 10.202/16, 10.203/16, internal networks 10.11/16,
  10.12/16, 10.13/16, each with a unique WireGuard interface name;
- services app-a (10.11.0.5), app-b (10.12.0.5), app-c (10.13.0.5): tcp/443, internal;
- partner acme on every gateway, granted app-a, app-b, app-c; partner globex on gw-c only, granted app-c;
- policy tests: acme reaches each app, globex reaches app-c, globex never reaches app-a.

Beside the gateways: a services namespace behind all three (app-x on its loopback, a responder on
tcp/22 and tcp/443), and acme's site on the underlay with one wireguard-go interface per gateway
(tunnel address 10.20x.1.1, keepalive 1 s), so handshakes and packets through each gateway are real.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.netns import sh, unique
from tests.sshlab_estate import GATEWAYS, gateway_keys, git, keypair_public, underlay, wait_socket, write_estate, write_json

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / "ansible"
PLAYBOOKS = COLLECTIONS / "ansible_collections" / "gatewayctl" / "gateway" / "playbooks"
GATEWAYCTL = Path(sys.executable).parent / "gatewayctl"  # this checkout's, not whatever /usr/local/bin points at
VENV_BIN = Path(sys.executable).parent
CONTROLLER = "192.0.2.1"
CONFIRM_TIMEOUT = 12  # seconds: the rollout's dead-man timer in the tests (gatewayctl's minimum is 10)


@dataclass
class Gateway:
    name: str
    ns: str
    address: str
    ifname: str
    checkout: Path
    state: Path
    sshd_pid: int = 0

    @property
    def profiles(self) -> Path:
        return self.checkout / "profiles"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """gatewayctl run directly in the gateway's namespace (for the test's own observations)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, str(GATEWAYCTL), "-q", "--profiles", str(self.profiles),
                               "--gateway", self.name, *args, "--state-dir", str(self.state)],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def drift(self) -> dict[str, Any]:
        result = self.ctl("drift", "--format", "json")
        assert result.returncode in (0, 1, 3), result.stderr
        return dict(json.loads(result.stdout))

    def ruleset(self) -> list[Any]:
        """The namespace's nftables ruleset as nft lists it, without what moves by itself (counters,
        handles, element timers: see element_ends)."""
        out = self.run("nft", "-j", "list", "ruleset").stdout
        return [_still(item) for item in json.loads(out)["nftables"] if "metainfo" not in item]

    def element_ends(self) -> dict[str, float]:
        """When each set element with a timer expires (UNIX time; a rollback re-adds an element with the
        time it has left, so its `timeout` changes but its end must not)."""
        now = time.time()
        out = json.loads(self.run("nft", "-j", "list", "ruleset").stdout)["nftables"]
        return {f"{item['set']['name']} {json.dumps(e['elem']['val'])}": now + e["elem"]["expires"]
                for item in out if "set" in item for e in item["set"].get("elem", [])
                if isinstance(e, dict) and "elem" in e and "expires" in e["elem"]}

    def wg_port(self) -> str:
        return self.run("wg", "show", self.ifname, "listen-port", check=False).stdout.strip()


def _still(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _still(v) for k, v in value.items() if k not in ("expires", "timeout", "handle", "packets", "bytes")}
    if isinstance(value, list):
        return [_still(v) for v in value]
    return value


@dataclass
class SshLab:
    root: Path
    token: str = field(default_factory=lambda: unique("")[:6])
    controller: str = ""
    gateways: list[Gateway] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    origin: Path = Path()
    pids: list[int] = field(default_factory=list)
    site_ifnames: list[str] = field(default_factory=list)
    site: str = ""
    notes: dict[str, Any] = field(default_factory=dict)  # what one test leaves for the next

    # --- building -------------------------------------------------------------------------------------

    def up(self) -> SshLab:
        (self.root / "keys").mkdir(mode=0o700, parents=True)
        self._estate()
        self._network()
        self._partner_side()
        self._ssh()
        self._inventory()
        return self

    def _estate(self) -> None:
        ifnames = {name: f"wgs{self.token}{name[-1]}" for name in GATEWAYS}
        work = self.root / "work"
        write_estate(work / "profiles", self.root / "keys", ifnames)
        git(self.root, "init", "-q", "-b", "main", str(work))
        self.commit("the first estate")
        self.origin = self.root / "origin.git"
        git(self.root, "clone", "-q", "--bare", str(work), str(self.origin))
        git(work, "remote", "add", "origin", str(self.origin))
        for i, name in enumerate(GATEWAYS):
            home = self.root / name
            home.mkdir()
            git(home, "clone", "-q", str(self.origin), str(home / "checkout"))
            self.gateways.append(Gateway(name, f"gws{self.token}{name[-1]}", underlay(i), ifnames[name], home / "checkout",
                                         home / "state"))

    @property
    def work(self) -> Path:
        return self.root / "work"

    def commit(self, message: str) -> str:
        """Commit the work copy of the profiles and push it to origin; returns the commit."""
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        if self.origin != Path() and self.origin.exists():
            git(self.work, "push", "-q", "origin", "main")
        return git(self.work, "rev-parse", "HEAD")

    def _network(self) -> None:
        t = self.token
        self.controller = f"gws{t}ctl"
        self._ns(self.controller)
        ctl = ("ip", "netns", "exec", self.controller)
        sh(*ctl, "ip", "link", "set", "lo", "up")
        sh(*ctl, "ip", "link", "add", f"brs{t}", "type", "bridge")
        sh(*ctl, "ip", "addr", "add", f"{CONTROLLER}/24", "dev", f"brs{t}")
        sh(*ctl, "ip", "link", "set", f"brs{t}", "up")
        for gw in self.gateways:
            self._ns(gw.ns)
            n = gw.name[-1]
            sh("ip", "link", "add", f"vs{t}{n}c", "netns", self.controller, "type", "veth", "peer", "name", f"vs{t}{n}g", "netns", gw.ns)
            sh(*ctl, "ip", "link", "set", f"vs{t}{n}c", "master", f"brs{t}", "up")
            gw.run("ip", "link", "set", "lo", "up")
            gw.run("ip", "addr", "add", f"{gw.address}/24", "dev", f"vs{t}{n}g")
            gw.run("ip", "link", "set", f"vs{t}{n}g", "up")
            for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
                gw.run("sysctl", "-qw", key)

    def _partner_side(self) -> None:
        """The services behind the gateways and acme's site in front of them (module docstring)."""
        t, svc, site = self.token, f"gws{self.token}svc", f"gws{self.token}p"
        self._ns(svc)
        self._ns(site)
        sh("ip", "netns", "exec", svc, "ip", "link", "set", "lo", "up")
        keys_of = gateway_keys(self.work / "profiles")
        site_cmd = ("ip", "netns", "exec", site)
        sh("ip", "link", "add", f"vs{t}pc", "netns", self.controller, "type", "veth", "peer", "name", f"vs{t}pp", "netns", site)
        sh("ip", "netns", "exec", self.controller, "ip", "link", "set", f"vs{t}pc", "master", f"brs{t}", "up")
        sh(*site_cmd, "ip", "link", "set", "lo", "up")
        sh(*site_cmd, "ip", "addr", "add", "192.0.2.50/24", "dev", f"vs{t}pp")
        sh(*site_cmd, "ip", "link", "set", f"vs{t}pp", "up")
        for i, gw in enumerate(self.gateways):
            n, internal, pool = gw.name[-1], f"10.{11 + i}", f"10.{201 + i}"
            sh("ip", "link", "add", f"vs{t}{n}s", "netns", gw.ns, "type", "veth", "peer", "name", f"vs{t}{n}S", "netns", svc)
            gw.run("ip", "addr", "add", f"{internal}.255.1/24", "dev", f"vs{t}{n}s")
            gw.run("ip", "link", "set", f"vs{t}{n}s", "up")
            gw.run("ip", "route", "add", f"{internal}.0.0/16", "via", f"{internal}.255.2")
            sh("ip", "netns", "exec", svc, "ip", "addr", "add", f"{internal}.255.2/24", "dev", f"vs{t}{n}S")
            sh("ip", "netns", "exec", svc, "ip", "link", "set", f"vs{t}{n}S", "up")
            sh("ip", "netns", "exec", svc, "ip", "addr", "add", f"{internal}.0.5/32", "dev", "lo")
            sh("ip", "netns", "exec", svc, "ip", "route", "add", f"{pool}.0.0/16", "via", f"{internal}.255.1")
            ifname = f"wgs{t}p{n}"
            self.pids.append(subprocess.Popen(["ip", "netns", "exec", site, "wireguard-go", "-f", ifname],
                                              env={**os.environ, "WG_PROCESS_FOREGROUND": "1"},
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
            self.site_ifnames.append(ifname)
            wait_socket(ifname)
            sh(*site_cmd, "wg", "set", ifname, "private-key", str(self.root / "keys" / "acme.key"), "peer", keys_of[gw.name],
               "endpoint", f"{gw.address}:{51820 + i}", "allowed-ips", f"{internal}.0.0/16", "persistent-keepalive", "1")
            sh(*site_cmd, "ip", "addr", "add", f"{pool}.1.1/32", "dev", ifname)
            sh(*site_cmd, "ip", "link", "set", ifname, "up")
            sh(*site_cmd, "ip", "route", "add", f"{internal}.0.0/16", "dev", ifname)
        self.site = site
        self.pids.append(subprocess.Popen(["ip", "netns", "exec", svc, sys.executable, "-m", "gatewayctl.lab.responder",
                                           "--tcp", "22,443"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)

    def reach(self, index: int, port: int) -> bool:
        """Does app-x (x: the gateway's letter) answer acme's site on tcp/`port`, through that gateway?"""
        spec = [{"src": f"10.{201 + index}.1.1", "dst": f"10.{11 + index}.0.5", "proto": "tcp", "port": port}]
        out = sh("ip", "netns", "exec", self.site, sys.executable, "-m", "gatewayctl.lab.probe", json.dumps(spec)).stdout
        return bool(json.loads(out)[0])

    def eventually_reach(self, index: int, port: int, seconds: float = 15.0) -> bool:
        """Reachability once the site's WireGuard has its session (it retries its handshake every 5 s)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.reach(index, port):
                return True
        return False

    def acme_public_key(self) -> str:
        return keypair_public(self.root / "keys" / "acme.key")

    def _ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)

    def _ssh(self) -> None:
        keys = self.root / "keys"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ansible-test", "-f", str(keys / "client"))
        shutil.copy(keys / "client.pub", keys / "authorized_keys")
        known = []
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        for gw in self.gateways:
            host_key = keys / f"host-{gw.name}"
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
            known.append(f"{gw.address} {(keys / f'host-{gw.name}.pub').read_text().split(' ')[0]} "
                         f"{(keys / f'host-{gw.name}.pub').read_text().split(' ')[1]}")
            pid_file = self.root / gw.name / "sshd.pid"
            proc = subprocess.Popen(["ip", "netns", "exec", gw.ns, "/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null",
                                     "-o", f"ListenAddress={gw.address}", "-o", f"HostKey={host_key}",
                                     "-o", f"AuthorizedKeysFile={keys / 'authorized_keys'}", "-o", f"PidFile={pid_file}",
                                     "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
                                     "-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no",
                                     "-o", "StrictModes=no", "-o", "Subsystem=sftp internal-sftp", "-o", "MaxSessions=20",
                                     "-o", "MaxStartups=50"],
                                    stdout=subprocess.DEVNULL, stderr=open(self.root / gw.name / "sshd.log", "ab"))  # noqa: SIM115
            gw.sshd_pid = proc.pid
        (keys / "known_hosts").write_text("\n".join(known) + "\n")
        for gw in self.gateways:
            self._wait_ssh(gw)

    def _wait_ssh(self, gw: Gateway) -> None:
        deadline = time.monotonic() + 15
        while True:
            result = subprocess.run(["ip", "netns", "exec", self.controller, *self.ssh_command(gw), "true"],
                                    capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ssh to {gw.name} ({gw.address}) failed: {result.stderr}")
            time.sleep(0.2)

    def ssh_command(self, gw: Gateway) -> list[str]:
        keys = self.root / "keys"
        return ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={keys / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
                "-i", str(keys / "client"), f"root@{gw.address}"]

    def _inventory(self) -> None:
        hosts = {gw.name: {"ansible_host": gw.address, "gatewayctl_gateway": gw.name, "gatewayctl_profiles": str(gw.profiles),
                           "gatewayctl_state_dir": str(gw.state), "gatewayctl_interface": gw.ifname,
                           # a site's own check, run on the gateway: its WireGuard device answers on its socket
                           "gatewayctl_post_apply_checks": [["test", "-S", f"/var/run/wireguard/{gw.ifname}.sock"]]}
                 for gw in self.gateways}
        inventory = {"gateways": {"hosts": hosts, "vars": {
            "ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
            "gatewayctl_executable": str(GATEWAYCTL), "gatewayctl_confirm_timeout": CONFIRM_TIMEOUT,
            "gatewayctl_handshake_peers": [self.acme_public_key()], "gatewayctl_handshake_wait": 30}}}
        write_json(self.root / "inventory.json", inventory)
        (self.root / "ansible.cfg").write_text("[defaults]\n")  # no site or user configuration decides the run

    # --- running Ansible --------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        keys = self.root / "keys"
        return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
                "ANSIBLE_HOME": str(self.root / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(self.root / "ansible-tmp"),
                "ANSIBLE_REMOTE_TMP": str(self.root / "remote-tmp"),
                "ANSIBLE_PRIVATE_KEY_FILE": str(keys / "client"), "ANSIBLE_HOST_KEY_CHECKING": "true",
                "ANSIBLE_SSH_ARGS": f"-o UserKnownHostsFile={keys / 'known_hosts'} -o StrictHostKeyChecking=yes "
                                    "-o ControlMaster=auto -o ControlPersist=60s",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.root / "cp"), "ANSIBLE_PIPELINING": "true",
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "false",
                "ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_CONFIG": str(self.root / "ansible.cfg")}

    def playbook(self, name: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
        """ansible-playbook on a shipped playbook, from the controller namespace, over SSH; the working
        folder is the profiles repository (as in CI)."""
        command = ["ip", "netns", "exec", self.controller, str(VENV_BIN / "ansible-playbook"), "-i",
                   str(self.root / "inventory.json"), str(PLAYBOOKS / name), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**self.env(), "PWD": str(self.work)},
                              cwd=self.work,
                              stdin=subprocess.DEVNULL)

    def adhoc(self, host: str, module: str, args: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
        """One module on one host (ansible ad hoc), its result printed as JSON by the one-line callback."""
        command = ["ip", "netns", "exec", self.controller, str(VENV_BIN / "ansible"), "-i", str(self.root / "inventory.json"),
                   host, "-m", module, "-a", json.dumps(args), "-o", *flags]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=self.env(), stdin=subprocess.DEVNULL)

    # --- cleaning up ------------------------------------------------------------------------------------

    def down(self) -> None:
        for socket in sorted((self.root / "cp").glob("*")) if (self.root / "cp").is_dir() else ():
            # Ansible's persistent SSH connections: their masters end by their own control socket
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "lab"], capture_output=True, timeout=30)
        for pid in self.pids:
            _stop(pid)
        for gw in self.gateways:
            _stop(gw.sshd_pid)
            for pid_file in gw.state.glob("wireguard-go-*.pid") if gw.state.exists() else ():
                _stop(int(pid_file.read_text().strip() or 0), reap=False)
        for name in self.namespaces:
            sh("ip", "netns", "del", name, check=False)
        for ifname in [gw.ifname for gw in self.gateways] + self.site_ifnames:
            Path(f"/var/run/wireguard/{ifname}.sock").unlink(missing_ok=True)


def _stop(pid: int, reap: bool = True) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if reap:
            os.waitpid(pid, 0)
        else:
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.05)
    except (ProcessLookupError, ChildProcessError):
        pass
