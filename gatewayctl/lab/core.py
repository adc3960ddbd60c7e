"""lab up / down / status: build the example estate in network namespaces and apply it for real.

Everything the lab makes is recorded in LAB_DIR/lab.json (namespaces, processes by PID), and
`lab down` removes exactly that. Addresses: underlay 192.0.2.0/24, inside 10.x, 100.64.x and fd00::/8.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gatewayctl.atomicfile import atomic_write
from gatewayctl.loader.yaml12 import read_document
from gatewayctl.partner_files import config_path

DEFAULT_LAB_DIR = Path("/var/lib/gatewayctl/lab")
UNDERLAY = ipaddress.ip_network("192.0.2.0/24")
EXTRA_TCP_PORTS = "2222,3389"  # listening but never granted: probes prove the firewall, not a closed port


class LabError(Exception):
    pass


def sh(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, input=input_text, timeout=60)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def keypair() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return private, public


@dataclass
class Lab:
    root: Path
    data: dict[str, Any]

    @property
    def gateway_ns(self) -> str:
        return str(self.data["gateway_ns"])

    def save(self) -> None:
        atomic_write(self.root / "lab.json", (json.dumps(self.data, indent=1) + "\n").encode(), 0o600)

    def ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.data["namespaces"].append(name)
        self.save()

    def spawn(self, ns: str, args: list[str], env: dict[str, str] | None = None) -> int:
        log = open(self.root / "logs" / f"{ns}-{Path(args[0]).name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], env={**os.environ, **(env or {})},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.data["pids"].append(proc.pid)
        self.save()
        return proc.pid

    def run(self, ns: str, *args: str) -> str:
        return sh("ip", "netns", "exec", ns, *args).stdout


def load(root: Path) -> Lab | None:
    path = root / "lab.json"
    return Lab(root, json.loads(path.read_text())) if path.exists() else None


def up(profiles: Path, root: Path) -> Lab:
    """Create the lab; returns it. Raises LabError (after removing what it made) on failure."""
    if load(root) is not None:
        raise LabError(f"a lab already exists in {root}: run `gatewayctl lab down` first")
    lab = new_lab(root)
    try:
        _derive_profiles(lab, profiles)
        _network(lab)
        _services(lab)
        _peers(lab)
    except Exception:
        down(root)
        raise
    return lab


def new_lab(root: Path) -> Lab:
    """The lab's folders and its record (nothing made yet); the pair's lab (lab/ha.py) starts here too."""
    token = secrets.token_hex(2)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in ("keys", "logs", "state"):
        (root / sub).mkdir(exist_ok=True, mode=0o700)
    lab = Lab(root, {"id": token, "namespaces": [], "pids": [], "peers": [], "gateway_ns": f"gwl{token}-gw",
                     "services_ns": f"gwl{token}-svc", "profiles": str(root / "profiles"), "state_dir": str(root / "state"),
                     "ifname": f"wgl{token}"})
    lab.save()
    return lab


def _derive_profiles(lab: Lab, source: Path) -> None:
    """Copy the estate with lab keys, lab endpoints and a unique interface name; keep everything else."""
    target = Path(lab.data["profiles"])
    (target / "partners").mkdir(parents=True)
    keys = lab.root / "keys"
    gateway = read_document(source / "gateway.yaml", "gateway.yaml").data
    private, public = keypair()
    _secret(keys / "gateway.key", private)
    wg = gateway["wireguard"]
    wg.update(interface=lab.data["ifname"], public_key=public, private_key_file=str(keys / "gateway.key"),
              endpoint=f"{UNDERLAY[1]}:{wg['listen_port']}")
    lab.data["listen_port"] = wg["listen_port"]
    lab.data["gateway_addresses"] = wg["addresses"]
    lab.data["internal_networks"] = gateway["internal_networks"]
    gateway.setdefault("host", {})["preshared_key_dir"] = str(keys)  # the lab's preshared keys live beside its other keys
    (target / "gateway.yaml").write_text(json.dumps(gateway, indent=1))
    shutil.copy(source / "services.yaml", target / "services.yaml")
    if (source / "ca").is_dir():
        shutil.copytree(source / "ca", target / "ca")
    index = 0
    for path in sorted((source / "partners").rglob("*.yaml")):
        partner = read_document(path, path.name).data
        for peer in partner["peers"]:
            index += 1
            private, public = keypair()
            _secret(keys / f"peer{index}.key", private)
            peer["public_key"] = public
            if "preshared_key_file" in peer:
                psk, _ = keypair()
                _secret(keys / f"peer{index}.psk", psk)
                peer["preshared_key_file"] = str(keys / f"peer{index}.psk")
            underlay = str(UNDERLAY[10 + index])
            if "endpoint" in peer:
                peer["endpoint"] = f"{underlay}:51820"
            lab.data["peers"].append({"partner": partner["id"], "name": peer["name"], "index": index,
                                      "ns": f"gwl{lab.data['id']}-p{index}", "ifname": f"wgl{lab.data['id']}p{index}",
                                      "underlay": underlay, "tunnel": peer["addresses"], "networks": peer.get("networks", []),
                                      "psk": "preshared_key_file" in peer})
        (target / "partners" / path.name).write_text(json.dumps(partner, indent=1))
    lab.save()


def _secret(path: Path, text: str) -> None:
    atomic_write(path, (text + "\n").encode(), 0o600)


def _network(lab: Lab) -> None:
    """Underlay bridge in the gateway namespace, one veth per peer, one veth to the services."""
    gw, svc, t = lab.gateway_ns, lab.data["services_ns"], lab.data["id"]
    lab.ns(gw)
    lab.ns(svc)
    lab.run(gw, "ip", "link", "set", "lo", "up")
    lab.run(gw, "ip", "link", "add", f"brl{t}", "type", "bridge")
    lab.run(gw, "ip", "addr", "add", f"{UNDERLAY[1]}/24", "dev", f"brl{t}")
    lab.run(gw, "ip", "link", "set", f"brl{t}", "up")
    for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
        lab.run(gw, "sysctl", "-qw", key)
    sh("ip", "link", "add", f"vl{t}s", "netns", gw, "type", "veth", "peer", "name", f"vl{t}S", "netns", svc)
    lab.run(gw, "ip", "addr", "add", "10.255.255.1/30", "dev", f"vl{t}s")
    lab.run(gw, "ip", "addr", "add", "fd00:ffff::1/64", "dev", f"vl{t}s", "nodad")
    lab.run(gw, "ip", "link", "set", f"vl{t}s", "up")
    lab.run(svc, "ip", "link", "set", "lo", "up")
    lab.run(svc, "ip", "addr", "add", "10.255.255.2/30", "dev", f"vl{t}S")
    lab.run(svc, "ip", "addr", "add", "fd00:ffff::2/64", "dev", f"vl{t}S", "nodad")
    lab.run(svc, "ip", "link", "set", f"vl{t}S", "up")
    lab.run(svc, "ip", "route", "add", "default", "via", "10.255.255.1")
    lab.run(svc, "ip", "-6", "route", "add", "default", "via", "fd00:ffff::1")
    for net in lab.data["internal_networks"]:
        via = "fd00:ffff::2" if ":" in net else "10.255.255.2"
        lab.run(gw, "ip", "route", "add", net, "via", via)


def _services(lab: Lab) -> None:
    """Every catalogue address on the services namespace; responders on all catalogue ports and a few others."""
    svc = lab.data["services_ns"]
    catalogue = read_document(Path(lab.data["profiles"]) / "services.yaml", "services.yaml").data["services"]
    tcp: set[str] = set(EXTRA_TCP_PORTS.split(","))
    udp: set[str] = set()
    hosts: list[str] = []
    for service in catalogue.values():
        for address in service["addresses"]:
            net = ipaddress.ip_network(address)
            host = net.network_address if net.prefixlen == net.max_prefixlen else next(net.hosts())
            lab.run(svc, "ip", "addr", "add", f"{host}/{net.max_prefixlen}", "dev", "lo", *(["nodad"] if net.version == 6 else []))
            hosts.append(str(host))
        target = tcp if service["protocol"] == "tcp" else udp if service["protocol"] == "udp" else set()
        target.update(str(p) for p in service.get("ports", []))
    module = [sys.executable, "-m", "gatewayctl.lab.responder"]
    lab.spawn(svc, [*module, "--tcp", ",".join(sorted(tcp)), "--udp", ",".join(sorted(udp)), "--udp-on", ",".join(hosts)])
    # the gateway itself answers too, so that "partners cannot reach the gateway" is the firewall's doing
    lab.spawn(lab.gateway_ns, [*module, "--tcp", "22,443," + EXTRA_TCP_PORTS])


def _peers(lab: Lab) -> None:
    """Each partner peer: a namespace on the underlay running wireguard-go with its partner config."""
    gw, t = lab.gateway_ns, lab.data["id"]
    for peer in lab.data["peers"]:
        ns, n = peer["ns"], peer["index"]
        lab.ns(ns)
        sh("ip", "link", "add", f"vl{t}g{n}", "netns", gw, "type", "veth", "peer", "name", f"vl{t}p{n}", "netns", ns)
        lab.run(gw, "ip", "link", "set", f"vl{t}g{n}", "master", f"brl{t}", "up")
        lab.run(ns, "ip", "link", "set", "lo", "up")
        lab.run(ns, "ip", "addr", "add", f"{peer['underlay']}/24", "dev", f"vl{t}p{n}")
        lab.run(ns, "ip", "link", "set", f"vl{t}p{n}", "up")
        for net in peer["networks"]:  # a host on the partner's LAN, for site-to-site probes
            first = next(ipaddress.ip_network(net).hosts())
            lab.run(ns, "ip", "addr", "add", f"{first}/32", "dev", "lo")
        lab.spawn(ns, ["wireguard-go", "-f", peer["ifname"]], {"WG_PROCESS_FOREGROUND": "1"})
        _wait_socket(peer["ifname"])
    lab.save()


def _wait_socket(ifname: str) -> None:
    for _ in range(100):
        if os.path.exists(f"/var/run/wireguard/{ifname}.sock"):
            return
        time.sleep(0.05)
    raise LabError(f"wireguard-go did not start for {ifname}")


def configure_peers(lab: Lab, built: Path) -> None:
    """Put each peer's generated partner config in place, keys filled in, as the partner would."""
    keys = lab.root / "keys"
    for peer in lab.data["peers"]:
        text = (built / config_path(peer["partner"], peer["name"])).read_text()
        text = text.replace("<REPLACE WITH THE PRIVATE KEY OF THIS PEER>", (keys / f"peer{peer['index']}.key").read_text().strip())
        if peer["psk"]:
            text = text.replace("<REPLACE WITH THE PRESHARED KEY AGREED WITH THE GATEWAY TEAM>",
                                (keys / f"peer{peer['index']}.psk").read_text().strip())
        conf = keys / f"peer{peer['index']}.conf"
        atomic_write(conf, text.encode(), 0o600)
        stripped = keys / f"peer{peer['index']}.stripped"
        atomic_write(stripped, sh("wg-quick", "strip", str(conf)).stdout.encode(), 0o600)
        ns, ifname = peer["ns"], peer["ifname"]
        lab.run(ns, "wg", "setconf", ifname, str(stripped))
        lab.run(ns, "wg", "set", ifname, "listen-port", "51820")
        for address in peer["tunnel"]:
            lab.run(ns, "ip", "addr", "replace", address, "dev", ifname)
        lab.run(ns, "ip", "link", "set", ifname, "mtu", "1420", "up")
        for line in text.splitlines():
            if line.startswith("AllowedIPs = ") and line.strip() != "AllowedIPs =":
                for net in line.split("=", 1)[1].split(","):
                    lab.run(ns, "ip", "route", "replace", net.strip(), "dev", ifname)


def wait_handshakes(lab: Lab, timeout_s: float = 10.0) -> list[str]:
    """Nudge each peer's tunnel and wait for its first handshake; return the peers that got none."""
    gateway_address = str(ipaddress.ip_interface(lab.data["gateway_addresses"][0]).ip)
    for peer in lab.data["peers"]:
        lab.run(peer["ns"], "wg", "set", peer["ifname"], "peer", _gateway_key(lab), "persistent-keepalive", "25")
        sh("ip", "netns", "exec", peer["ns"], "ping", "-c", "1", "-W", "1", gateway_address, check=False)
    deadline = time.monotonic() + timeout_s
    waiting = {p["ifname"]: p for p in lab.data["peers"]}
    while waiting and time.monotonic() < deadline:
        for ifname, peer in list(waiting.items()):
            stamps = lab.run(peer["ns"], "wg", "show", ifname, "latest-handshakes").split()
            if len(stamps) >= 2 and stamps[1] != "0":
                del waiting[ifname]
        time.sleep(0.2)
    return [f"{p['partner']}/{p['name']}" for p in waiting.values()]


def _gateway_key(lab: Lab) -> str:
    return str(read_document(Path(lab.data["profiles"]) / "gateway.yaml", "gateway.yaml").data["wireguard"]["public_key"])


def down(root: Path) -> list[str]:
    """Stop what the lab started (by PID) and delete the namespaces it made; nothing else."""
    lab = load(root)
    removed: list[str] = []
    if lab is None:
        return removed
    pids = list(lab.data["pids"])
    for pidfile in (root / "state").rglob("wireguard-go-*.pid"):  # a pair's nodes: state/NODE/
        pids.append(int(pidfile.read_text()))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            removed.append(f"process {pid}")
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            _wait_gone(pid)
    for ns in reversed(lab.data["namespaces"]):
        if sh("ip", "netns", "del", ns, check=False).returncode == 0:
            removed.append(f"namespace {ns}")
    for ifname in [lab.data["ifname"], *(p["ifname"] for p in lab.data["peers"])]:
        Path(f"/var/run/wireguard/{ifname}.sock").unlink(missing_ok=True)
    shutil.rmtree(root)
    return removed


def _wait_gone(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
