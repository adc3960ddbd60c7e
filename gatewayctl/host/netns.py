"""Network namespaces: enter one (whole process or one worker thread), or a private throwaway one.

Python 3.11 has no os.setns/os.unshare, so libc is called directly. setns and unshare act on the
calling thread only; a single-threaded process moves as a whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from collections.abc import Callable
from typing import TypeVar

from gatewayctl.host.errors import HostError

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name in {".", ".."}:
        raise HostError(f"--netns {name!r} is not a namespace name")
    path = f"/run/netns/{name}"
    if not os.path.exists(path):
        raise HostError(f"network namespace {name!r} does not exist (no {path}); create it with `ip netns add {name}`")
    return path


def enter(name: str) -> None:
    """Move the calling thread (the whole process, when single-threaded) into namespace `name`."""
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise HostError(f"cannot enter network namespace {name!r}: {os.strerror(err)} (needs root)")
    finally:
        os.close(fd)


def unshare() -> None:
    """Give the calling thread a private, empty network namespace."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise HostError(f"cannot create a private network namespace: {os.strerror(err)} (needs root)")


def run_in_thread(setup: Callable[[], None], work: Callable[[], T]) -> T:
    """Run `work` in a fresh thread after `setup` (enter or unshare); return its result or raise its error."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            setup()
            box["result"] = work()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="gatewayctl-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
