"""Test helpers for network namespaces and wireguard-go, cleaned up by PID and name we created."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


def unique(prefix: str) -> str:
    """A name unique on this machine, at most 15 characters (interface names are global for wireguard-go)."""
    return f"{prefix}{secrets.token_hex(4)}"[:15]


def sh(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, input=input_text, timeout=60)


@dataclass
class Namespace:
    name: str
    pids: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str) -> Namespace:
        name = unique(prefix)
        sh("ip", "netns", "add", name)
        return cls(name)

    def run(self, *args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.name, *args, check=check, input_text=input_text)

    def start_wireguard_go(self, ifname: str) -> int:
        """Start wireguard-go in the foreground inside the namespace; return its PID once the socket is up."""
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, "wireguard-go", "-f", ifname], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pids.append(proc.pid)
        sock = Path(f"/var/run/wireguard/{ifname}.sock")
        for _ in range(100):
            if sock.exists():
                return proc.pid
            time.sleep(0.05)
        raise RuntimeError(f"wireguard-go did not create {sock}")

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        sh("ip", "netns", "del", self.name, check=False)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()
