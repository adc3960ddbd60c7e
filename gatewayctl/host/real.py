"""The real host: netlink, libnftables and WireGuard (UAPI socket or kernel generic netlink)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gatewayctl.host import conntrack, foreign, generation, kernel_wg, links, nft, uapi
from gatewayctl.host.errors import HostError
from gatewayctl.host.nftstate import NftTableState
from gatewayctl.host.wgtypes import DeviceUpdate


class RealHost:
    """Acts in the network namespace of the calling thread (see host/netns.py)."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self._writes: int | None = 0  # None once a write may have committed nothing

    @property
    def nft_writes(self) -> int | None:
        return self._writes

    def _wrote(self, committed: str) -> None:
        if committed == "maybe":
            self._writes = None
        elif committed == "one" and self._writes is not None:
            self._writes += 1

    def generation(self) -> tuple[str, int, int] | None:
        return generation.current()

    def snapshot(self, ifname: str, table: str, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        gen = generation.current()  # first: what is listed below is of this generation or a later one
        proven = generation.proves(known, gen, table)
        listed_at = time.time()
        listing = None if proven else nft.list_json(f"list table inet {table}")
        if not proven and gen is not None and generation.current() != gen:
            gen = None  # something committed while the table was listed: the listing is of no one generation
        link = links.raw_link(ifname)
        backend = self.backend_of(ifname, link)
        wg_raw, wg_error = None, None
        if backend is not None:
            try:
                wg_raw = uapi.get_raw(ifname) if backend == "userspace" else kernel_wg.get_raw(ifname)
            except HostError as exc:
                wg_error = str(exc)
        elif link is not None:
            wg_error = f"{ifname} exists but is not a WireGuard interface (kind {link.get('kind')})"
        # the other tables as the record keeps them, when the generation proves it (apply/tablerecord.py foreign_of)
        kept = known.get("foreign") if proven and known is not None else None
        return {
            "ifname": ifname, "table": table, "link": link, "wg_backend": backend, "wg_raw": wg_raw,
            "wg_error": wg_error, "nft_listed_at": listed_at, "nft_table": listing, "nft_generation": gen,
            "nft_proven": proven,
            "nft_chains": kept["chains"] if kept else nft.list_json("list chains"), "forwarding": links.raw_forwarding(),
            "foreign": foreign.acquire(ifname, table, kept),
            "guard": False if kept else nft.list_json(f"list table inet {table}_guard") is not None,
        }

    @staticmethod
    def backend_of(ifname: str, link: dict[str, Any] | None) -> str | None:
        """Userspace when its UAPI socket exists, kernel when the link is of kind wireguard."""
        if os.path.exists(uapi.socket_path(ifname)):
            return "userspace"
        if link is not None and link.get("kind") == "wireguard":
            return "kernel"
        return None

    def nft_canonical(self, text: str, table: str) -> NftTableState:
        return nft.canonical(text, table)

    def nft_load(self, text: str) -> None:
        nft.load(text)
        # a table (re)loaded always commits; emptying sets alone commits nothing when they are empty
        only_flushes = all(line.startswith("flush set ") for line in text.splitlines() if line.strip())
        self._wrote("maybe" if only_flushes else "one")

    def nft_delete(self, table: str) -> None:
        if nft.delete_table(table):
            self._wrote("one")

    def nft_list_text(self, table: str) -> str | None:
        return nft.list_text(table)

    def nft_elements(self, table: str, delete: dict[str, list[str]], add: dict[str, list[str]],
                     flush: tuple[str, ...] = ()) -> None:
        self._wrote(nft.update_elements(table, delete, add, flush))

    def nft_get_elements(self, table: str, name: str, keys: list[str]) -> frozenset[str]:
        return nft.get_elements(table, name, keys)

    def wg_read(self, ifname: str, backend: str) -> str:
        return uapi.get_raw(ifname) if backend == "userspace" else kernel_wg.get_raw(ifname)

    def wg_create(self, ifname: str) -> str:
        if links.create_wireguard(ifname):
            return "kernel"
        return self._start_userspace(ifname)

    def _pidfile(self, ifname: str) -> Path | None:
        return self.log_dir / f"wireguard-go-{ifname}.pid" if self.log_dir else None

    def _running(self, ifname: str) -> int | None:
        """The PID of the wireguard-go this state folder started for `ifname`, if it still runs."""
        pidfile = self._pidfile(ifname)
        if pidfile is None or not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().split()[0])
            # a killed process nobody reaped yet (a zombie) is not running
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (ValueError, IndexError, OSError):
            return None
        # after a reboot the PID may belong to another process: only wireguard-go serving `ifname` counts
        ours = any(Path(a.decode(errors="replace")).name == "wireguard-go" for a in argv[:1]) and ifname.encode() in argv
        return None if state in ("Z", "X") or not ours else pid

    def _start_userspace(self, ifname: str) -> str:
        binary = shutil.which("wireguard-go")
        if binary is None:
            raise HostError(f"cannot create {ifname}: the kernel has no WireGuard module and wireguard-go is not installed")
        running = self._running(ifname)
        if running is not None or _served(uapi.socket_path(ifname)):
            raise HostError(f"the wireguard-go that serves {ifname} is still running" + (f" (pid {running})" if running else "")
                            + f" but there is no interface {ifname}: it was renamed or moved. Rename it back "
                            f"(ip link set NAME name {ifname}) or stop that process; the gateway stays closed meanwhile")
        log = open(self.log_dir / f"wireguard-go-{ifname}.log", "ab") if self.log_dir else subprocess.DEVNULL  # noqa: SIM115
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        proc = subprocess.Popen([binary, "-f", ifname], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        pidfile = self._pidfile(ifname)
        if pidfile is not None:  # so that whoever stops it can do so by PID
            pidfile.write_text(f"{proc.pid}\n")
        for _ in range(100):
            if os.path.exists(uapi.socket_path(ifname)) and links.raw_link(ifname) is not None:
                return "userspace"
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        _stop(proc.pid)
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)
        raise HostError(f"wireguard-go did not create {ifname} within 5 s (see its log in the state folder)")

    def wg_destroy(self, ifname: str, backend: str) -> None:
        pid = self._running(ifname)
        links.delete(ifname)
        if pid is not None:
            _stop(pid)
            pidfile = self._pidfile(ifname)
            if pidfile is not None:
                pidfile.unlink(missing_ok=True)
        for _ in range(100):  # wireguard-go removes its socket as it exits
            if not os.path.exists(uapi.socket_path(ifname)):
                return
            time.sleep(0.05)
        raise HostError(f"the WireGuard socket of {ifname} is still there after removing the interface")

    def wg_update(self, ifname: str, backend: str, update: DeviceUpdate) -> None:
        if backend == "userspace":
            uapi.apply_update(ifname, update)
        else:
            kernel_wg.apply_update(ifname, update)

    def link_configure(self, ifname: str, mtu: int | None, up: bool | None) -> None:
        links.configure(ifname, mtu, up)

    def address(self, ifname: str, cidr: str, add: bool) -> None:
        links.address(ifname, cidr, add)

    def route(self, ifname: str, dst: str, add: bool) -> None:
        links.route(ifname, dst, add)

    def conntrack_list(self) -> list[dict[str, Any]]:
        return conntrack.list_flows()

    def conntrack_delete(self, flows: list[dict[str, Any]]) -> int:
        return conntrack.delete_flows(flows)


class ForkedSnapshot:
    """Read the host in a forked child while the parent compiles the profiles: the two halves of a
    plan use both cores (loading the netlink library and listing the ruleset take a third of a plan).

    The child inherits the network namespace; it sends back the raw snapshot as JSON, or the error."""

    def __init__(self, host: RealHost, ifname: str, table: str,
                 known: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None = None) -> None:
        """`known`: the table record, or a function the child calls for it (the parent need not wait for it)."""
        read_fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: read, send, exit without running the parent's cleanup
            try:  # whatever happens (the parent gone: a broken pipe), the child never returns into its code
                os.close(read_fd)
                payload: dict[str, Any]
                try:
                    payload = {"snapshot": host.snapshot(ifname, table, known() if callable(known) else known)}
                except Exception as exc:  # reported by the parent
                    payload = {"error": str(exc)}
                data = json.dumps(payload).encode()  # dumps, not dump: the C encoder, ready before the parent asks
                with os.fdopen(write_fd, "wb") as out:
                    out.write(data)
            finally:
                os._exit(0)
        os.close(write_fd)
        self.reader = os.fdopen(read_fd, "rb")
        self.key = (ifname, table)

    def result(self) -> dict[str, Any]:
        with self.reader:
            text = self.reader.read()
        os.waitpid(self.pid, 0)
        payload: dict[str, Any] = json.loads(text) if text else {"error": "the process reading the host died"}
        if "error" in payload:
            raise HostError(str(payload["error"]))
        snapshot: dict[str, Any] = payload["snapshot"]
        return snapshot

    def stop(self) -> None:
        """The snapshot is not wanted: end the child (if still reading) and reap it."""
        if not self.reader.closed:
            self.reader.close()
            _stop(self.pid)


def _stop(pid: int) -> None:
    """SIGTERM a process this host started, and reap it if it is our child."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: wait for it to be gone (or a zombie nobody reaps)
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
            except (OSError, IndexError):
                return
            done = 0
        if done:
            return
        time.sleep(0.05)


def _served(path: str) -> bool:
    """Whether a process answers on this UAPI socket; a stale socket file (its process killed) is removed."""
    import socket

    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False
    except OSError:
        return True
    finally:
        probe.close()
    return True
