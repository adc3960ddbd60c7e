"""lab up --ha: the example estate on a pair of gateway nodes, keepalived and conntrackd in the node namespaces.

Layout (t is the lab's token):
  gwl{t}-gw    the underlay switch: bridge brl{t}; the partners and both nodes' underlay links plug in here
  gwl{t}-na/nb the nodes: ul0 on the underlay (192.0.2.2 / .3, the floating address 192.0.2.1 on the active
               node), in0 towards the services (10.255.255.2 / .3; 10.255.255.1 and fd00:ffff::1 move with
               the floating address), sy0 a direct link between the nodes for conntrackd (100.64.255.1 / .2)
  gwl{t}-svc   the services, behind bridge brs{t}; its default routes point at the moving inside addresses
Both nodes run wireguard-go for the same interface name: each node's commands run in a mount namespace
of their own with the node's folder bound on /var/run/wireguard, so each node's UAPI socket is its own.
Everything is recorded in lab.json, and `lab down` removes it (processes by PID, then namespaces).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gatewayctl.lab import core
from gatewayctl.lab.core import UNDERLAY, Lab, LabError, sh
from gatewayctl.loader.yaml12 import read_document

FLOATING = UNDERLAY[1]  # where the single lab's gateway is: the partners' endpoint
NODES = (("node-a", "na", 2, 150), ("node-b", "nb", 3, 100))  # name, namespace suffix, address index, priority
INSIDE4, INSIDE6 = "10.255.255", "fd00:ffff:"
SERVICES_INSIDE = ("10.255.255.10", "fd00:ffff::10")
SYNC = "100.64.255"
UL, IN, SY = "ul0", "in0", "sy0"
# every command of a node: its own mount namespace, the node's folder on /var/run/wireguard
BIND = 'mount --bind "$0" /var/run/wireguard && exec "$@"'


def node_names() -> tuple[str, ...]:
    return tuple(n[0] for n in NODES)


def up(profiles: Path, root: Path, advert_ms: int = 1000) -> Lab:
    """Create the pair's lab (namespaces, links, services, partner peers); returns it. Applying and
    starting the daemons is `start` (after the build). Raises LabError after removing what it made."""
    if core.load(root) is not None:
        raise LabError(f"a lab already exists in {root}: run `gatewayctl lab down` first")
    lab = core.new_lab(root)
    try:
        core._derive_profiles(lab, profiles)
        _add_ha(lab, advert_ms)
        _network(lab)
        core._services(lab)
        for node in lab.data["ha"]["nodes"].values():  # "partners cannot reach the gateway" holds on each node
            _spawn(lab, node, "responder", [sys.executable, "-m", "gatewayctl.lab.responder", "--tcp",
                                            "22,443," + core.EXTRA_TCP_PORTS], bind=False)
        core._peers(lab)
    except Exception:
        core.down(root)
        raise
    return lab


def _add_ha(lab: Lab, advert_ms: int) -> None:
    """gateway.yaml gets the pair: nodes, floating address, the moving inside addresses, its folders."""
    t, root = lab.data["id"], lab.root
    path = Path(lab.data["profiles"]) / "gateway.yaml"
    gateway = read_document(path, "gateway.yaml").data
    nodes: dict[str, dict[str, Any]] = {}
    for name, suffix, index, priority in NODES:
        ns = f"gwl{t}-{suffix}"
        nodes[name] = {"name": name, "ns": ns, "underlay": str(UNDERLAY[index]), "inside4": f"{INSIDE4}.{index}",
                       "inside6": f"{INSIDE6}:{index}", "sync": f"{SYNC}.{index - 1}", "priority": priority,
                       "state_dir": str(root / "state" / name), "wg_dir": str(root / "wg" / name),
                       "dir": str(root / "out" / "ha" / name), "run_dir": str(root / "ha-run" / name),
                       "switch_port": f"vl{t}{suffix}u"}
        for key in ("state_dir", "wg_dir", "run_dir"):
            Path(nodes[name][key]).mkdir(parents=True, mode=0o700)
    gateway["ha"] = {
        "interface": UL, "sync_interface": SY, "floating_address": f"{FLOATING}/{UNDERLAY.prefixlen}",
        "virtual_router_id": 1 + int(t, 16) % 255, "advert_interval_ms": advert_ms,
        "nodes": [{"name": n["name"], "underlay_address": f"{n['underlay']}/{UNDERLAY.prefixlen}",
                   "priority": n["priority"], "sync_address": n["sync"]} for n in nodes.values()],
        "internal_addresses": [{"address": f"{INSIDE4}.1/24", "interface": IN},
                               {"address": f"{INSIDE6}:1/64", "interface": IN}],
        "source_routes": [{"to": str(UNDERLAY), "metric": 50}],
        "config_dir": str(root / "out" / "ha"), "run_dir": str(root / "ha-run"),
    }
    path.write_text(json.dumps(gateway, indent=1))
    lab.data["ha"] = {"floating": str(FLOATING), "nodes": nodes}
    lab.save()


def _network(lab: Lab) -> None:
    """The underlay switch, the services behind their own bridge, both nodes and their sync link."""
    sw, svc, t = lab.gateway_ns, lab.data["services_ns"], lab.data["id"]
    for ns in (sw, svc, *(n["ns"] for n in lab.data["ha"]["nodes"].values())):
        lab.ns(ns)
        lab.run(ns, "ip", "link", "set", "lo", "up")
    lab.run(sw, "ip", "link", "add", f"brl{t}", "type", "bridge")
    lab.run(sw, "ip", "link", "set", f"brl{t}", "up")
    lab.run(svc, "ip", "link", "add", f"brs{t}", "type", "bridge")
    lab.run(svc, "ip", "addr", "add", f"{SERVICES_INSIDE[0]}/24", "dev", f"brs{t}")
    lab.run(svc, "ip", "addr", "add", f"{SERVICES_INSIDE[1]}/64", "dev", f"brs{t}", "nodad")
    lab.run(svc, "ip", "link", "set", f"brs{t}", "up")
    lab.run(svc, "ip", "route", "add", "default", "via", f"{INSIDE4}.1")
    lab.run(svc, "ip", "-6", "route", "add", "default", "via", f"{INSIDE6}:1")
    for node in lab.data["ha"]["nodes"].values():
        _node_links(lab, node)
    a, b = (n["ns"] for n in lab.data["ha"]["nodes"].values())
    sh("ip", "link", "add", SY, "netns", a, "type", "veth", "peer", "name", SY, "netns", b)
    for node in lab.data["ha"]["nodes"].values():
        lab.run(node["ns"], "ip", "addr", "add", f"{node['sync']}/30", "dev", SY)
        lab.run(node["ns"], "ip", "link", "set", SY, "up")


def _node_links(lab: Lab, node: dict[str, Any]) -> None:
    """One node: underlay link on the switch, inside link on the services' bridge, forwarding on."""
    ns, t, suffix = node["ns"], lab.data["id"], node["ns"].rsplit("-", 1)[1]
    sh("ip", "link", "add", node["switch_port"], "netns", lab.gateway_ns, "type", "veth", "peer", "name", UL, "netns", ns)
    lab.run(lab.gateway_ns, "ip", "link", "set", node["switch_port"], "master", f"brl{t}", "up")
    # the node's own address without its prefix route: the route below (metric 100) loses to the one
    # keepalived adds on the active node with the floating address as source (metric 50)
    lab.run(ns, "ip", "addr", "add", f"{node['underlay']}/{UNDERLAY.prefixlen}", "dev", UL, "noprefixroute")
    lab.run(ns, "ip", "link", "set", UL, "up")
    lab.run(ns, "ip", "route", "add", str(UNDERLAY), "dev", UL, "src", node["underlay"], "metric", "100")
    sh("ip", "link", "add", f"vl{t}{suffix}i", "netns", lab.data["services_ns"], "type", "veth", "peer", "name", IN,
       "netns", ns)
    lab.run(lab.data["services_ns"], "ip", "link", "set", f"vl{t}{suffix}i", "master", f"brs{t}", "up")
    lab.run(ns, "ip", "addr", "add", f"{node['inside4']}/24", "dev", IN)
    lab.run(ns, "ip", "addr", "add", f"{node['inside6']}/64", "dev", IN, "nodad")
    lab.run(ns, "ip", "link", "set", IN, "up")
    for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
        lab.run(ns, "sysctl", "-qw", key)
    for net in lab.data["internal_networks"]:
        lab.run(ns, "ip", "route", "add", net, "via", SERVICES_INSIDE[1] if ":" in net else SERVICES_INSIDE[0])


def _spawn(lab: Lab, node: dict[str, Any], label: str, args: list[str], bind: bool = True) -> int:
    """Start a process in the node's namespace (and its /var/run/wireguard); record its PID."""
    log = open(lab.root / "logs" / f"{node['name']}-{label}.log", "ab")  # noqa: SIM115 - the child keeps it
    command = ["ip", "netns", "exec", node["ns"], *(["unshare", "-m", "sh", "-c", BIND, node["wg_dir"]] if bind else []),
               *args]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    lab.data["pids"].append(proc.pid)
    node.setdefault("pids", {})[label] = proc.pid
    lab.save()
    return proc.pid


def node_command(lab: Lab, name: str, args: list[str]) -> list[str]:
    """`args` run in node `name`'s namespace with its own /var/run/wireguard."""
    node = lab.data["ha"]["nodes"][name]
    return ["ip", "netns", "exec", node["ns"], "unshare", "-m", "sh", "-c", BIND, node["wg_dir"], *args]


def gatewayctl(lab: Lab, name: str, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """gatewayctl against node `name` (plan, apply, drift, revoke...), as that node's operator runs it."""
    node = lab.data["ha"]["nodes"][name]
    command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", lab.data["profiles"], *args]
    if args and args[0] in ("plan", "apply", "drift", "confirm", "revoke"):
        command += ["--netns", node["ns"], "--state-dir", node["state_dir"], "--node", name]
    return subprocess.run(node_command(lab, name, command), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start(lab: Lab) -> list[str]:
    """Bring the pair up: the send-only-from-the-floating-address table and conntrackd on both nodes,
    apply on the standby, then on the active node, then keepalived on both. Returns what it did."""
    said = []
    for name, node in lab.data["ha"]["nodes"].items():
        lab.run(node["ns"], "nft", "-f", f"{node['dir']}/gatewayctl-ha.nft")
        start_conntrackd(lab, name)
    for name in sorted(node_names(), key=lambda n: lab.data["ha"]["nodes"][n]["priority"]):  # standby first
        done = gatewayctl(lab, name, "apply", "--yes")
        if done.returncode != 0:
            raise LabError(f"apply on {name} failed: {done.stderr.strip() or done.stdout.strip()}")
        said.append(f"applied on {name}")
    for name in node_names():
        start_keepalived(lab, name)
    active = wait_active(lab, 15.0)
    if active is None:
        raise LabError("no node took the floating address within 15 s (see the keepalived logs in the lab's logs/)")
    said.append(f"active node: {active}")
    return said


def start_conntrackd(lab: Lab, name: str) -> int:
    node = lab.data["ha"]["nodes"][name]
    Path(node["run_dir"], "conntrackd.lock").unlink(missing_ok=True)  # left by a conntrackd this lab stopped
    pid = _spawn(lab, node, "conntrackd", ["conntrackd", "-C", f"{node['dir']}/conntrackd.conf"], bind=False)
    for _ in range(100):
        if Path(node["run_dir"], "conntrackd.ctl").exists():
            return pid
        time.sleep(0.05)
    raise LabError(f"conntrackd did not start on {name} (see {lab.root}/logs/{name}-conntrackd.log)")


def start_keepalived(lab: Lab, name: str) -> int:
    node = lab.data["ha"]["nodes"][name]
    run = node["run_dir"]
    return _spawn(lab, node, "keepalived", ["keepalived", "-n", "-l", "-D", "-P", "-f", f"{node['dir']}/keepalived.conf",
                                            "-p", f"{run}/keepalived.pid", "-r", f"{run}/vrrp.pid"])


def stop(lab: Lab, name: str, label: str, sig: int = signal.SIGTERM) -> None:
    """Stop a process the lab started on node `name` (by its recorded PID) and forget it."""
    node = lab.data["ha"]["nodes"][name]
    pid = node.get("pids", {}).pop(label, None)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    _reap(pid)
    if pid in lab.data["pids"]:
        lab.data["pids"].remove(pid)
    lab.save()


def kill_wireguard(lab: Lab, name: str) -> int:
    """SIGKILL the node's wireguard-go (started by its apply; PID in its state folder): a crash."""
    node = lab.data["ha"]["nodes"][name]
    pidfile = Path(node["state_dir"], f"wireguard-go-{lab.data['ifname']}.pid")
    pid = int(pidfile.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    pidfile.unlink()  # so that nothing later signals a PID that may have been given to another process
    return pid


def _reap(pid: int) -> None:
    """Wait for a stopped process: reap it when it is this process's child, else until it is gone."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        core._wait_gone(pid)


def underlay(lab: Lab, name: str, up_: bool) -> None:
    """Take the node's underlay link down at the switch (a pulled cable: the node sees no carrier) or back up."""
    node = lab.data["ha"]["nodes"][name]
    lab.run(lab.gateway_ns, "ip", "link", "set", node["switch_port"], "up" if up_ else "down")


def active(lab: Lab) -> str | None:
    """The node that holds the floating address, or None."""
    for name, node in lab.data["ha"]["nodes"].items():
        listing = sh("ip", "-n", node["ns"], "-o", "addr", "show", "dev", UL, check=False).stdout
        if f" {lab.data['ha']['floating']}/" in listing:
            return str(name)
    return None


def wait_active(lab: Lab, timeout_s: float, other_than: str | None = None) -> str | None:
    """Wait until a node (other than `other_than`) holds the floating address; that node, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = active(lab)
        if now is not None and now != other_than:
            return now
        time.sleep(0.05)
    return None


def gateway_address(lab: Lab) -> str:
    return str(ipaddress.ip_interface(lab.data["gateway_addresses"][0]).ip)
