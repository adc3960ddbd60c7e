"""nftables through libnftables' JSON interface (Debian's python3-nftables).

Only gatewayctl's own table is ever written; it is replaced in one transaction
(`table {}`, `delete table`, full table), so a failed load leaves the live ruleset untouched.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from gatewayctl.host.errors import HostError
from gatewayctl.host.netns import run_in_thread, unshare
from gatewayctl.host.nftstate import NftTableState, parse_table


def _nft() -> Any:
    try:
        import nftables
    except ImportError:
        raise HostError("the Python binding of libnftables is missing: apt-get install python3-nftables "
                        "(and create the virtual environment with --system-site-packages)") from None
    nft = nftables.Nftables()
    nft.set_json_output(True)
    nft.set_handle_output(False)
    return nft


def list_json(command: str) -> dict[str, Any] | None:
    """Run a `list` command; None when the object does not exist."""
    rc, out, err = _nft().cmd(command)
    if rc != 0:
        if "No such file or directory" in err:
            return None
        raise HostError(f"nft {command}: {err.strip()}")
    return json.loads(out) if out else {"nftables": []}


def list_text(table: str) -> str | None:
    """The table in nft's text form, with element timers and counters (it loads back as it was)."""
    nft = _nft()
    nft.set_json_output(False)
    rc, out, err = nft.cmd(f"list table inet {table}")
    if rc != 0:
        if "No such file or directory" in err:
            return None
        raise HostError(f"nft list table inet {table}: {err.strip()}")
    return str(out)


def update_elements(table: str, delete: dict[str, list[str]], add: dict[str, list[str]], flush: tuple[str, ...] = ()) -> str:
    """One transaction: delete elements, empty the `flush` sets (only along with deletions), then add
    elements; all or nothing. Returns what it committed, for apply/tablerecord.py's count: "none"
    (nothing sent), "one" (certainly one transaction: a deletion, which fails when the element is
    not there, or an element with a timeout, whose timer is set anew even when it is there), or
    "maybe" (only elements without a timeout added: the kernel commits nothing when each is there
    already, measured on 6.18)."""
    lines = [f"delete element inet {table} {name} {{ {', '.join(keys)} }}" for name, keys in sorted(delete.items()) if keys]
    certain = bool(lines) or any(" timeout " in t for texts in add.values() for t in texts)
    lines += [f"flush set inet {table} {name}" for name in flush] if lines else []
    lines += [f"add element inet {table} {name} {{ {', '.join(texts)} }}" for name, texts in sorted(add.items()) if texts]
    if not lines:
        return "none"
    load("\n".join(lines) + "\n", "element update")
    return "one" if certain else "maybe"


def get_elements(table: str, name: str, keys: list[str]) -> frozenset[str]:
    """Which keys are elements, exactly: `get element` may answer with a wider element that covers
    the key, so the answer is compared with the key as written."""
    if not keys:
        return frozenset()
    found = _get(table, name, keys)
    if found is None:  # at least one is missing: ask one by one
        found = set()
        for key in keys:
            found |= _get(table, name, [key]) or set()
    return frozenset(k for k in keys if k in found)


def _get(table: str, name: str, keys: list[str]) -> set[str] | None:
    nft = _nft()
    nft.set_json_output(False)  # nft 1.0.6 answers `get element` in text only
    wanted = ", ".join(k.split(" : ")[0] for k in keys)
    rc, out, err = nft.cmd(f"get element inet {table} {name} {{ {wanted} }}")
    if rc != 0:
        if "No such file or directory" in err:
            return None
        raise HostError(f"nft get element in {name}: {err.strip()}")
    match = re.search(r"elements = \{ (.*) \}", out, re.S)
    items = re.split(r",\s+", match.group(1)) if match else []
    return {re.sub(r'( counter packets \d+ bytes \d+)?( timeout \S+)?( expires \S+)?( comment ".*")?$', "", i.strip())
            for i in items}


def load(text: str, label: str = "ruleset") -> None:
    """Load a ruleset from a temporary file, so errors point at line:column; raise HostError on failure."""
    fd, path = tempfile.mkstemp(prefix="gatewayctl-", suffix=".nft")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        nft = _nft()
        nft.set_json_output(False)
        rc, _, err = nft.cmd_from_file(path)
    finally:
        os.unlink(path)
    if rc != 0:
        raise HostError(f"the kernel refused the {label} (the live ruleset is as it was): {err.strip().replace(path, label)}")


def delete_table(name: str) -> bool:
    """Delete table inet NAME; False when there was none."""
    rc, _, err = _nft().cmd(f"delete table inet {name}")
    if rc != 0 and "No such file or directory" not in err:
        raise HostError(f"cannot delete table inet {name}: {err.strip()}")
    return bool(rc == 0)


def canonical(text: str, name: str) -> NftTableState:
    """Load `text` into a private throwaway namespace and read it back: nft's own canonical form."""

    def work() -> NftTableState:
        load(text, "desired ruleset")
        state = parse_table(list_json(f"list table inet {name}") or {}, name)
        if state is None:
            raise HostError(f"the desired ruleset does not define table inet {name}")
        return state

    return run_in_thread(unshare, work)
