"""Addressing: tunnel addresses, partner LANs and keys that collide.

Overlaps between partners and duplicate keys make a policy ambiguous, so `validate` refuses them
too; the linter reports the same problems under these codes (see `from_validation`)."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule


class OverlappingTunnelAddresses(Rule):
    """What it does: reports tunnel addresses or partner LAN networks that overlap between peers.

    Why it matters: WireGuard routes an address to exactly one peer; with an overlap, one partner
    silently receives another's traffic, or its packets are dropped.

    Example: acme's 10.250.1.0/24 and initech's 10.250.1.1/32.

    Fix: give each peer its own addresses from the pool."""

    code, name, severity = "GW501", "overlapping-tunnel-addresses", "error"
    summary = "Tunnel addresses or partner LANs overlap between peers."
    hint = "give each peer its own, non-overlapping addresses"
    from_validation = True

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class PartnerAddressOverlapsInternal(Rule):
    """What it does: reports partner tunnel addresses and LAN networks that overlap the gateway's
    internal networks.

    Why it matters: a partner announcing internal addresses can be mistaken for an internal host
    by logs and by other rules, and routing to the real internal hosts breaks.

    Example: globex's LAN 10.1.0.0/24 inside internal network 10.1.0.0/16.

    Fix: ask the partner to NAT its LAN behind other addresses, or re-address."""

    code, name, severity = "GW502", "partner-address-overlaps-internal", "error"
    summary = "A partner address overlaps the gateway's internal networks."
    hint = "have the partner translate its LAN to addresses that do not collide"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        internal = ctx.estate.gateway.model.internal_networks
        for partner in ctx.partners():
            for index, peer in enumerate(partner.model.peers):
                for field in ("addresses", "networks"):
                    for aindex, net in enumerate(getattr(peer, field)):
                        hit = next((i for i in internal if i.version == net.version and i.overlaps(net)), None)
                        if hit is not None:
                            yield self.at(partner.doc, ("peers", index, field, aindex),
                                          f"peer {peer.name!r} of partner {partner.model.id!r}: {net} overlaps internal "
                                          f"network {hit}", ("peer", partner.model.id, str(index)))


class DuplicateWireguardKey(Rule):
    """What it does: reports a WireGuard public key used by two peers (or by a peer and the gateway).

    Why it matters: a key identifies exactly one peer; two peers with one key means a copied
    private key, and WireGuard would treat them as one.

    Example: two partners' peers with the same public_key.

    Fix: have each peer generate its own key pair."""

    code, name, severity = "GW503", "duplicate-wireguard-key", "error"
    summary = "A WireGuard public key is used twice."
    hint = "every peer generates its own key pair"
    from_validation = True

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


class PartnerAddressOverlapsGateway(Rule):
    """What it does: reports partner addresses that contain the gateway's own tunnel address.

    Why it matters: packets for the gateway would be routed into a partner's tunnel.

    Example: a peer with addresses [10.250.0.0/24] when the gateway is 10.250.0.1.

    Fix: give the peer addresses that exclude the gateway's."""

    code, name, severity = "GW504", "partner-address-overlaps-gateway", "error"
    summary = "A partner address contains the gateway's own tunnel address."
    hint = "exclude the gateway's address from the peer's addresses"
    from_validation = True

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())


RULES = [OverlappingTunnelAddresses, PartnerAddressOverlapsInternal, DuplicateWireguardKey, PartnerAddressOverlapsGateway]
