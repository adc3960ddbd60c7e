"""Acquire, read-only, what lies outside gatewayctl's table and can act on partner packets: the other
nftables tables of every family, iptables-legacy's tables, the other WireGuard devices.

The raw data go into the snapshot's `foreign` entry; host/bypassstate.py parses it. Runs in the
network namespace of the calling thread (subprocesses inherit it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatewayctl.host import nft, wgscan
from gatewayctl.host.errors import HostError

LEGACY = {"ip": ("ip_tables_names", "iptables-legacy-save"), "ip6": ("ip6_tables_names", "ip6tables-legacy-save")}
DEVICE_HOOKS = ("ingress", "egress")


def acquire(ifname: str, own_table: str, kept: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The raw `foreign` snapshot entry; a part that cannot be read is named in `errors`, never skipped silently.
    `kept`: the nftables part as the state folder's table record keeps it, proven by the generation
    (apply/tablerecord.py foreign_of); the rest is read."""
    errors: list[str] = []
    if kept is not None:
        listing, devices = kept["nft"], kept["nft_devices"]
    else:
        listing, devices = _nft_tables(own_table, errors)
    return {"nft": listing, "nft_devices": devices, "legacy": {f: _legacy(f) for f in LEGACY},
            "wg_devices": wgscan.other_devices(ifname), "errors": errors}


def _nft_tables(own_table: str, errors: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every table but `inet own_table`, listed one by one (gatewayctl's own table, which can hold
    tens of thousands of elements, is not listed twice), and the text form of those with chains on a
    device, whose JSON lacks the device in nft 1.0.6."""
    tables = nft.list_json("list tables") or {"nftables": []}
    items: list[dict[str, Any]] = []
    devices: dict[str, str] = {}
    for entry in tables["nftables"]:
        table = entry.get("table")
        if not table or (table["family"] == "inet" and table["name"] == own_table):
            continue
        label = f"{table['family']} {table['name']}"
        try:
            listed = (nft.list_json(f"list table {label}") or {"nftables": []})["nftables"]
            items += listed
            if any(i.get("chain", {}).get("hook") in DEVICE_HOOKS for i in listed):
                devices[label] = _list_text(f"list table {label}")
        except HostError as exc:
            errors.append(f"nftables table {label} could not be listed: {exc}")
    return {"nftables": items}, devices


def _list_text(command: str) -> str:
    handle = nft._nft()  # the module's own handle factory: same binding checks and namespace rules
    handle.set_json_output(False)
    rc, out, err = handle.cmd(command)
    if rc != 0:
        raise HostError(f"nft {command}: {err.strip()}")
    return str(out)


def _legacy(family: str) -> dict[str, Any]:
    """The legacy tables that exist in this namespace and their save listing. The names file is read
    first: saving never creates a table, and nothing runs when there is none."""
    names_file, tool = LEGACY[family]
    path = Path("/proc/thread-self/net") / names_file
    tables = path.read_text().split() if path.exists() else []
    if not tables:
        return {"tables": [], "save": None, "error": None}
    binary = shutil.which(tool)
    if binary is None:
        return {"tables": tables, "save": None, "error": f"{tool} is not installed"}
    try:
        done = subprocess.run([binary], capture_output=True, text=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return {"tables": tables, "save": None, "error": f"{tool} did not answer within 10 s"}
    if done.returncode != 0:
        return {"tables": tables, "save": None, "error": f"{tool} failed: {done.stderr.strip()[:200]}"}
    return {"tables": tables, "save": done.stdout, "error": None}
