"""Which node of a high-availability pair this host is, and whether it is the active one.

A node is told its name, first found wins: `--node NAME`, the environment variable GATEWAYCTL_NODE,
or the file `node` in the state folder (one line, the name). The name only identifies the host: plan,
apply and drift compare against the same desired state on either node (the pair shares its ruleset
and WireGuard configuration). A gateway without `ha:` needs no name.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: choosing the node imports no model
    from gatewayctl.model.ha import HaNode, HaSettings

NODE_ENV = "GATEWAYCTL_NODE"
NODE_FILE = "node"


class NodeError(Exception):
    """The node is unknown or not this host; the message says what to do."""


@dataclass(frozen=True)
class NodeRole:
    """This host's node and whether it holds the floating address (the active node)."""

    node: HaNode
    source: str  # where the name came from
    active: bool
    floating: str

    def describe(self) -> str:
        """One line for the operator: the node, how it was named, active or standby."""
        role = (f"active (holds the floating address {self.floating}): apply the standby first"
                if self.active else f"standby (the floating address {self.floating} is on the other node)")
        return f"node {self.node.name} (from {self.source}): {role}"


def node_name(option: str | None, state_root: Path) -> tuple[str, str] | None:
    """(name, where it came from), or None when the host was not told its node."""
    if option:
        return option, "--node"
    if os.environ.get(NODE_ENV):
        return os.environ[NODE_ENV], NODE_ENV
    path = state_root / NODE_FILE
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return text, str(path)
    return None


def resolve(ha: HaSettings, named: tuple[str, str] | None, addresses: frozenset[str]) -> NodeRole:
    """This host's role in the pair; raises NodeError when no node is named, the name is not a node,
    or the named node's underlay address is not on this host (the wrong node was named)."""
    known = ", ".join(n.name for n in ha.nodes)
    if named is None:
        raise NodeError(f"this gateway is a pair (gateway.yaml ha:, nodes {known}): say which node this host is "
                        f"with --node NAME, {NODE_ENV}=NAME or a file {NODE_FILE} in the state folder")
    name, source = named
    node = ha.node(name)
    if node is None:
        raise NodeError(f"{source} names node {name[:40]!r}, which is not a node of this pair (nodes: {known})")
    own = _plain(node.underlay_address.ip)
    if own not in {_plain(a) for a in addresses}:
        raise NodeError(f"node {name}'s underlay address {own} is not on this host: is this host node {name}? "
                        f"(from {source})")
    floating = _plain(ha.floating_address.ip)
    return NodeRole(node, source, floating in {_plain(a) for a in addresses}, floating)


def _plain(address: object) -> str:
    try:
        return str(ipaddress.ip_address(str(address)))
    except ValueError:
        return str(address)
