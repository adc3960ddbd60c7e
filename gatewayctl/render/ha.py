"""The files of a high-availability pair, per node: keepalived, conntrackd, the track and notify scripts.

Everything the pair shares (the WireGuard config, the ruleset) is rendered once by render_all and is
the same file on both nodes; only what differs per node, or what only a pair needs, is here, under
ha/NODE/. A node installs its folder as `config_dir`/NODE (gateway.yaml's ha: block).
"""

from __future__ import annotations

import jinja2

from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.model.ha import HaNode, HaSettings

# (file name, template, kind) of each node's files
NODE_FILES = (
    ("keepalived.conf", "ha/keepalived.conf.j2", "keepalived (VRRP, floating address)"),
    ("conntrackd.conf", "ha/conntrackd.conf.j2", "conntrackd (connection-state sync)"),
    ("gatewayctl-ha-check.sh", "ha/gatewayctl-ha-check.sh.j2", "keepalived track script"),
    ("gatewayctl-ha-notify.sh", "ha/gatewayctl-ha-notify.sh.j2", "keepalived notify script"),
    ("gatewayctl-ha.nft", "ha/gatewayctl-ha.nft.j2", "nftables table (WireGuard sends only from the floating address)"),
    ("gatewayctl-ha.service", "ha/gatewayctl-ha.service.j2", "systemd unit (boot: that table before WireGuard)"),
)


def node_dir(ha: HaSettings, node: HaNode) -> str:
    """Where the node's files are installed on its host."""
    return f"{ha.config_dir.rstrip('/')}/{node.name}"


def run_dir(ha: HaSettings, node: HaNode) -> str:
    """Where the node keeps conntrackd's socket, lock and log, and the notify log."""
    return f"{ha.run_dir.rstrip('/')}/{node.name}"


def ha_files(policy: CompiledPolicy, ha: HaSettings, env: jinja2.Environment,
             common: dict[str, str]) -> list[tuple[str, str, str]]:
    """(relative path, content, kind) of every node's files, nodes in the profile's order."""
    files = []
    for node in ha.nodes:
        other = ha.other(node)
        context = dict(
            ha=ha, node=node, other=other, interface=policy.interface.name, table=policy.table.name,
            listen_port=policy.interface.listen_port,
            private_key_file=policy.interface.private_key_file, public_key=policy.interface.public_key,
            instance=f"gatewayctl_{policy.gateway}".replace("-", "_"),
            advert_s=_seconds(ha.advert_interval_ms), family=ha.floating_address.version,
            own_addresses=_own_addresses(ha),
            node_dir=node_dir(ha, node), run_dir=run_dir(ha, node), **common)
        for name, template, kind in NODE_FILES:
            files.append((f"ha/{node.name}/{name}", env.get_template(template).render(**context), kind))
    return files


def _seconds(ms: int) -> str:
    """keepalived's advert_int: seconds, with centiseconds when not whole (VRRPv3)."""
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.2f}".rstrip("0")


def _own_addresses(ha: HaSettings) -> list[str]:
    """The pair's own addresses: flows to or from them are the nodes', not partners' (conntrackd skips them)."""
    own = {str(ha.floating_address.ip)}
    for node in ha.nodes:
        own |= {str(node.underlay_address.ip), str(node.sync_address)}
    return sorted(own)
