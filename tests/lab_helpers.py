"""Helpers for tests on the lab: run gatewayctl against the lab gateway, probe, tamper."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.netns import sh


@dataclass
class LabHandle:
    root: Path

    @property
    def data(self) -> dict[str, Any]:
        return json.loads((self.root / "lab.json").read_text())

    @property
    def gw(self) -> str:
        return str(self.data["gateway_ns"])

    @property
    def ifname(self) -> str:
        return str(self.data["ifname"])

    @property
    def profiles(self) -> Path:
        return Path(self.data["profiles"])

    @property
    def state(self) -> Path:
        return Path(self.data["state_dir"])

    def peer(self, partner: str) -> dict[str, Any]:
        return next(p for p in self.data["peers"] if p["partner"] == partner)

    def ctl(self, *args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        """gatewayctl against the lab gateway, as a separate process (it enters the namespace)."""
        command = [sys.executable, "-m", "gatewayctl", "-q", "--profiles", str(self.profiles), *args]
        if args and args[0] in ("plan", "apply", "drift", "confirm"):
            command += ["--netns", self.gw, "--state-dir", str(self.state)]
        import os

        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                              stdin=subprocess.DEVNULL)

    def gw_run(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.gw, *args).stdout

    def reach(self, partner: str, dst: str, port: int, proto: str = "tcp", src: str | None = None) -> bool:
        peer = self.peer(partner)
        spec = [{"src": src or peer["tunnel"][0].split("/")[0], "dst": dst, "proto": proto, "port": port}]
        out = sh("ip", "netns", "exec", peer["ns"], sys.executable, "-m", "gatewayctl.lab.probe", json.dumps(spec)).stdout
        return bool(json.loads(out)[0])

    def eventually_reach(self, partner: str, dst: str, port: int, seconds: float = 40.0) -> bool:
        """Reachability after the gateway recreated a peer: the partner's WireGuard re-handshakes on
        its own after its session times out (about 15-25 s), as a real partner would."""
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.reach(partner, dst, port):
                return True
        return False

    def handshake_and_rx(self, partner: str) -> tuple[int, int]:
        """The gateway's view of a partner's first peer: last handshake (s) and bytes received."""
        key = self.peer_key(partner)
        dump = self.gw_run("wg", "show", self.ifname, "dump").splitlines()[1:]
        fields = next(line.split("\t") for line in dump if line.startswith(key))
        return int(fields[4]), int(fields[5])

    def peer_key(self, partner: str) -> str:
        doc = json.loads((self.profiles / "partners" / f"{partner}.yaml").read_text())
        return str(doc["peers"][0]["public_key"])

    @contextmanager
    def edited(self, partner: str, change: Any) -> Iterator[None]:
        """Edit a partner profile (JSON) for the duration; restore it and re-apply afterwards."""
        path = self.profiles / "partners" / f"{partner}.yaml"
        original = path.read_text()
        doc = json.loads(original)
        change(doc)
        path.write_text(json.dumps(doc, indent=1))
        try:
            yield
        finally:
            path.write_text(original)
            result = self.ctl("apply", "--yes")
            assert result.returncode == 0, result.stderr


@contextmanager
def running_lab(root: Path, profiles: Path) -> Iterator[LabHandle]:
    """`gatewayctl lab up` in `root` from `profiles`; `lab down` afterwards, checking it removed its namespaces."""
    import os

    import pytest

    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the lab needs root: CI must run as root")
        pytest.skip("the lab needs root")
    up = subprocess.run([sys.executable, "-m", "gatewayctl", "--profiles", str(profiles), "lab", "up", "--dir", str(root)],
                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    handle = LabHandle(root)
    handle.up_output = up.stdout + up.stderr  # type: ignore[attr-defined]
    lab_id = handle.data["id"] if (root / "lab.json").exists() else None
    try:
        assert up.returncode == 0, handle.up_output  # type: ignore[attr-defined]
        yield handle
    finally:
        down = subprocess.run([sys.executable, "-m", "gatewayctl", "lab", "down", "--dir", str(root)], capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        if lab_id:  # lab down removed every namespace it made
            assert f"gwl{lab_id}-" not in sh("ip", "netns", "list").stdout
