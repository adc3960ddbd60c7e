"""What `gatewayctl --version` reports besides its own version: Python, the nftables binding and the
WireGuard backends this host offers. Read-only, quick (no netlink, no device created): files under
/sys and /lib/modules, the import of the binding and `--version` of two binaries, each bounded.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SYS_MODULE = Path("/sys/module/wireguard")
LIB_MODULES = Path("/lib/modules")


def _first_line(*args: str) -> str | None:
    """The first line a command prints, or None when it is missing, fails or hangs."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def python_line() -> str:
    """`Python 3.11.2 (/path/to/python)`: the interpreter gatewayctl runs on."""
    return f"Python {platform.python_version()} ({sys.executable})"


def nftables_line() -> str:
    """The libnftables binding gatewayctl imports (Debian's python3-nftables) and the nft binary beside it."""
    nft = _first_line("nft", "--version") or "nft not found"
    try:
        import nftables  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return f"nftables binding: not importable (install python3-nftables; {nft})"
    try:
        version = importlib.metadata.version("nftables")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return f"nftables binding: {version} ({Path(nftables.__file__).parent}); {nft}"


def kernel_module_state(sys_module: Path = SYS_MODULE, lib_modules: Path = LIB_MODULES,
                        release: str | None = None) -> str:
    """`loaded (version V)`, `loaded`, `available, not loaded` or `absent` for the wireguard kernel module."""
    if sys_module.is_dir():
        version_file = sys_module / "version"
        version = version_file.read_text().strip() if version_file.is_file() else ""
        return f"loaded (version {version})" if version else "loaded"
    tree = lib_modules / (release or platform.release())
    builtin = tree / "modules.builtin"
    if builtin.is_file() and any(line.endswith("/wireguard.ko") for line in builtin.read_text().splitlines()):
        return "built in"
    if tree.is_dir() and next(tree.rglob("wireguard.ko*"), None) is not None:
        return "available, not loaded"
    return "absent"


def wireguard_line() -> str:
    """The WireGuard backends: the kernel module's state and the wireguard-go binary's version."""
    binary = shutil.which("wireguard-go")
    userspace = "not found"
    if binary is not None:
        version = (_first_line(binary, "--version") or "version unknown").removeprefix("wireguard-go ")
        userspace = f"{version} ({binary})"
    return f"WireGuard: kernel module {kernel_module_state()}; wireguard-go {userspace}"


def version_text(own: str) -> str:
    """The whole --version text: gatewayctl's own line first (scripts read its third word)."""
    return "\n".join((f"gatewayctl, version {own}", python_line(), nftables_line(), wireguard_line()))
