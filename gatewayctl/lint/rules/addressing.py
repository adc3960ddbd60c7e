"""Addressing: what a partner may claim, and where a service may be.

Whatever a partner claims is routed into its tunnel, and a service is what partners reach, so
`validate` itself refuses every problem of this family and no suppression or exception lifts one;
the linter reports the same problems under these codes (see `ValidationRule`)."""

from __future__ import annotations

from gatewayctl.lint.rule import ValidationRule


class OverlappingTunnelAddresses(ValidationRule):
    """What it does: refuses tunnel addresses or partner LAN networks that overlap between peers;
    the message names both entries, file and line.

    Why it matters: WireGuard routes an address to exactly one peer; with an overlap, one partner
    silently receives another's traffic, or its packets are dropped.

    Example: acme's 10.250.1.0/24 and initech's 10.250.1.1/32.

    Fix: give each peer its own addresses from the pool."""

    code, name, severity = "GW501", "overlapping-tunnel-addresses", "error"
    summary = "Tunnel addresses or partner LANs overlap between peers."
    hint = "give each peer its own, non-overlapping addresses"


class PartnerAddressOverlapsInternal(ValidationRule):
    """What it does: refuses partner tunnel addresses and LAN networks that overlap the gateway's
    internal networks (`internal_networks` in gateway.yaml).

    Why it matters: the gateway routes a partner's addresses into the partner's tunnel; a partner
    LAN inside an internal network sends the internal hosts' traffic to the partner. `validate`
    refuses it, and no suppression lifts it.

    Example: globex's LAN 10.1.0.0/24 inside internal network 10.1.0.0/16.

    Fix: ask the partner to NAT its LAN behind other addresses, or re-address."""

    code, name, severity = "GW502", "partner-address-overlaps-internal", "error"
    summary = "A partner address overlaps the gateway's internal networks."
    hint = "have the partner translate its LAN to addresses that do not collide"


class DuplicateWireguardKey(ValidationRule):
    """What it does: reports a WireGuard public key used by two peers (or by a peer and the gateway).

    Why it matters: a key identifies exactly one peer; two peers with one key means a copied
    private key, and WireGuard would treat them as one.

    Example: two partners' peers with the same public_key.

    Fix: have each peer generate its own key pair."""

    code, name, severity = "GW503", "duplicate-wireguard-key", "error"
    summary = "A WireGuard public key is used twice."
    hint = "every peer generates its own key pair"


class PartnerAddressOverlapsGateway(ValidationRule):
    """What it does: refuses partner addresses that contain one of the gateway's own addresses: its
    tunnel addresses (where the smart-card front listens too) and its endpoint, when that is an
    address.

    Why it matters: packets for the gateway would be routed into a partner's tunnel.

    Example: a peer with addresses [10.250.0.0/24] when the gateway is 10.250.0.1.

    Fix: give the peer addresses that exclude the gateway's."""

    code, name, severity = "GW504", "partner-address-overlaps-gateway", "error"
    summary = "A partner address contains the gateway's own tunnel address."
    hint = "exclude the gateway's address from the peer's addresses"


class PartnerAddressOverlapsService(ValidationRule):
    """What it does: refuses partner tunnel addresses and LAN networks that overlap a service's
    addresses in services.yaml.

    Why it matters: the partner would receive the service's traffic, and its own packets would pass
    as the service's.

    Example: a LAN [10.1.0.0/28] when the service crm-api is at 10.1.0.5.

    Fix: give the partner addresses of its own, or correct the service."""

    code, name, severity = "GW505", "partner-address-overlaps-service", "error"
    summary = "A partner address overlaps a service's address."
    hint = "a partner claims only addresses of its own"


class SpecialPurposeAddress(ValidationRule):
    """What it does: refuses partner addresses and service addresses in special-purpose ranges:
    IPv4-mapped IPv6 (::ffff:0:0/96), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), loopback, link-local,
    multicast, unspecified and reserved ranges (0.0.0.0/8, 240.0.0.0/4, ::/96).

    Why it matters: mapped and NAT64 addresses reach IPv4 hosts through an IPv6 door that other
    rules and tools read differently; loopback is the gateway itself; link-local and multicast are
    the gateway's own links. None of them belongs to a partner or a service.

    Example: `networks: ["::ffff:10.1.0.0/120"]`, `addresses: [127.0.0.1/32]`.

    Fix: use the partner's or the service's real unicast addresses."""

    code, name, severity = "GW506", "special-purpose-address", "error"
    summary = "A partner or service address is in a special-purpose range."
    hint = "use real unicast addresses"


class PartnerNetworkTooWide(ValidationRule):
    """What it does: refuses partner tunnel addresses and LAN networks wider than gateway.yaml's
    `limits.max_partner_network_prefix` (default /16 for IPv4, /48 for IPv6).

    Why it matters: a partner claiming 128.0.0.0/1 has half of IPv4 routed into its tunnel. The
    limit is the gateway owners' (gateway.yaml), not the partner's.

    Example: `networks: [10.1.0.0/24, 128.0.0.0/1]`.

    Fix: list the partner's real LAN networks."""

    code, name, severity = "GW507", "partner-network-too-wide", "error"
    summary = "A partner network is wider than gateway.yaml's limit."
    hint = "list the partner's real networks"


class ServiceInTunnelPool(ValidationRule):
    """What it does: refuses service addresses that overlap the gateway's tunnel pool.

    Why it matters: the pool holds the partners' tunnel addresses; such a "service" is access from
    one partner to another.

    Example: a service at 10.250.0.0/24 with the pool 10.250.0.0/16.

    Fix: correct the service's address."""

    code, name, severity = "GW508", "service-in-tunnel-pool", "error"
    summary = "A service address overlaps the tunnel pool."
    hint = "a service lives on the internal networks, not among the partners"


RULES = [OverlappingTunnelAddresses, PartnerAddressOverlapsInternal, DuplicateWireguardKey, PartnerAddressOverlapsGateway,
         PartnerAddressOverlapsService, SpecialPurposeAddress, PartnerNetworkTooWide, ServiceInTunnelPool]
