"""Find, read-only, the WireGuard devices of this network namespace other than the configured one.

Userspace devices (wireguard-go) are found by their UAPI sockets: /proc/thread-self/net/unix lists
only the sockets bound in this namespace (the socket folder itself is shared by all namespaces).
A socket keeps the name the interface had when wireguard-go started it, so when no link of that
name exists the link is found through the serving process's tun file descriptor. Kernel devices
are the links of kind wireguard. Only public keys leave this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gatewayctl.host import kernel_wg, uapi
from gatewayctl.host.errors import HostError


def other_devices(ifname: str) -> list[dict[str, Any]]:
    """Raw entries (link, socket, backend, public_key, peer_keys, error) for every device but `ifname`,
    plus the configured socket when the link serving it now has another name."""
    links = _links_here()
    found = []
    for name, inode in sorted(_sockets_here().items()):
        link = name if name in links else _tun_name(inode)
        if name == ifname and link == ifname:
            continue
        found.append({"link": link, "socket": name, "backend": "userspace", **_keys(name, uapi.get_raw)})
    for name, kind in sorted(links.items()):
        if kind == "wireguard" and name != ifname:
            found.append({"link": name, "socket": None, "backend": "kernel", **_keys(name, kernel_wg.get_raw)})
    return found


def _keys(name: str, read: Any) -> dict[str, Any]:
    try:
        device = uapi.parse_get(read(name))
    except HostError as exc:
        return {"public_key": None, "peer_keys": [], "error": str(exc)}
    return {"public_key": device.public_key, "peer_keys": sorted(device.peers), "error": None}


def _links_here() -> dict[str, str | None]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        result: dict[str, str | None] = {}
        for link in ipr.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            result[link.get_attr("IFLA_IFNAME")] = info.get_attr("IFLA_INFO_KIND") if info else None
        return result


def _sockets_here() -> dict[str, str]:
    """UAPI socket name -> socket inode, for the sockets bound in this namespace."""
    folders = {uapi.SOCKET_DIR, os.path.realpath(uapi.SOCKET_DIR)}
    found = {}
    for line in Path("/proc/thread-self/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and os.path.dirname(fields[7]) in folders and fields[7].endswith(".sock"):
            found[os.path.basename(fields[7])[:-5]] = fields[6]
    return found


def _tun_name(inode: str) -> str | None:
    """The tun interface of the process that holds socket `inode` (from its fdinfo `iff:` line)."""
    wanted = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fds = _fd_targets(pid)
        if wanted in fds.values():
            for fd, target in fds.items():
                if target == "/dev/net/tun":
                    return _iff(pid, fd)
            return None
    return None


def _fd_targets(pid: str) -> dict[str, str]:
    try:
        folder = f"/proc/{pid}/fd"
        return {fd: os.readlink(f"{folder}/{fd}") for fd in os.listdir(folder)}
    except OSError:  # the process ended, or is not ours to read
        return {}


def _iff(pid: str, fd: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("iff:"):
                return line.split(None, 1)[1].strip()
    except OSError:
        pass
    return None
