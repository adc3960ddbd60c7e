"""Exposure: destinations and ports wider or weaker than a partner should see."""

from __future__ import annotations

from collections.abc import Iterator

from gatewayctl.lint.finding import Finding
from gatewayctl.lint.rule import LintContext, Rule, ValidationRule
from gatewayctl.model.types import parse_port_spec

# (protocol, port) -> what it is. SMBv1 rides on NetBIOS session service (139); SMB on 445 can be
# SMBv2/3 and is not listed.
INSECURE = {
    ("tcp", 21): "FTP (clear-text credentials)", ("tcp", 23): "Telnet (clear text)",
    ("tcp", 512): "rexec (clear text)", ("tcp", 513): "rlogin (clear text)", ("tcp", 514): "rsh (clear text)",
    ("tcp", 139): "NetBIOS session service (SMBv1)", ("tcp", 389): "plain LDAP (clear-text binds)",
    ("udp", 389): "plain CLDAP", ("udp", 161): "SNMP v1/v2c (community strings in clear)",
    ("udp", 162): "SNMP traps v1/v2c", ("udp", 69): "TFTP (no authentication)", ("tcp", 110): "POP3 (clear text)",
    ("tcp", 143): "IMAP (clear text)", ("tcp", 5900): "VNC (weak authentication)",
}


class DestinationAny(ValidationRule):
    """What it does: refuses services whose addresses together cover every IPv4 or every IPv6
    address, in one network (0.0.0.0/0, ::/0) or split (0.0.0.0/1 and 128.0.0.0/1, four /2s...),
    and partners whose grants together do (0.0.0.0/1 in one service, 128.0.0.0/1 in another).
    `validate` refuses them; no suppression lifts this.

    Why it matters: a grant of such a service lets the partner reach every host behind the gateway
    on that port; least privilege is gone.

    Example: `addresses: [0.0.0.0/0]`, or `addresses: [0.0.0.0/1, 128.0.0.0/1]`.

    Fix: list the hosts or networks the service really lives on."""

    code, name, severity = "GW401", "destination-any", "error"
    summary = "A service's destination is the whole address space."
    hint = "list the service's real hosts or networks"


class DestinationTooBroad(Rule):
    """What it does: reports service networks wider than `lint.max_prefix_ipv4` (default /24) or
    `lint.max_prefix_ipv6` (default /64).

    Why it matters: a wide network usually means "the whole subnet of the application" where a
    few hosts would do.

    Example: `addresses: [10.1.0.0/16]`.

    Fix: narrow to the hosts, or suppress with the reason the network is needed."""

    code, name, severity = "GW402", "destination-too-broad", "warning"
    summary = "A service's network is wider than the configured limit."
    hint = "narrow the addresses to the service's hosts"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        limits = {4: ctx.settings.max_prefix_ipv4, 6: ctx.settings.max_prefix_ipv6}
        doc = ctx.estate.services.doc
        for name, service in ctx.estate.services.model.services.items():
            for index, net in enumerate(service.addresses):
                if 0 < net.prefixlen < limits[net.version]:
                    yield self.at(doc, ("services", name, "addresses", index), f"service {name!r} has destination {net}, "
                                  f"wider than /{limits[net.version]}", ("service", name))


class WidePortRange(Rule):
    """What it does: reports port ranges of more than `lint.max_port_range` ports (default 100), in
    services and in grants.

    Why it matters: a wide range exposes whatever else listens in it.

    Example: `ports: ["1024-65535"]`.

    Fix: list the ports the service uses."""

    code, name, severity = "GW403", "wide-port-range", "warning"
    summary = "A port range is wider than the configured limit."
    hint = "list only the ports the service uses"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        limit = ctx.settings.max_port_range
        doc = ctx.estate.services.doc
        for name, service in ctx.estate.services.model.services.items():
            for index, spec in enumerate(service.ports):
                first, last = parse_port_spec(spec)
                if last - first + 1 > limit:
                    yield self.at(doc, ("services", name, "ports", index), f"service {name!r} opens ports {spec} "
                                  f"({last - first + 1} ports, more than {limit})", ("service", name))


class InsecureService(Rule):
    """What it does: reports services on ports of protocols without encryption or with weak
    authentication: Telnet, FTP, rsh/rlogin/rexec, SMBv1 (NetBIOS session), plain LDAP, SNMP
    v1/v2c, TFTP, POP3, IMAP, VNC.

    Why it matters: a partner's traffic crosses the partner's own network before the tunnel;
    clear-text credentials there are exposed to everyone on it.

    Example: `protocol: tcp, ports: [23]`.

    Fix: use the encrypted variant (SSH, SFTP, LDAPS, SNMPv3), or suppress on the service with the
    reason and an end date."""

    code, name, severity = "GW404", "insecure-service", "error"
    summary = "A service uses a protocol without encryption or with weak authentication."
    hint = "use the encrypted variant, or suppress with a reason and an end date"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        doc = ctx.estate.services.doc
        for name, service in ctx.estate.services.model.services.items():
            for index, spec in enumerate(service.ports):
                first, last = parse_port_spec(spec)
                for (proto, port), what in sorted(INSECURE.items()):
                    if proto == service.protocol and first <= port <= last:
                        yield self.at(doc, ("services", name, "ports", index),
                                      f"service {name!r} exposes {proto}/{port}: {what}", ("service", name))


class ServiceOutsideInternalNetworks(Rule):
    """What it does: reports service addresses outside the gateway's `internal_networks`.

    Why it matters: the gateway fronts those networks; a destination elsewhere is either a typo or
    access to something this gateway should not be routing to.

    Example: internal_networks [10.1.0.0/16] and a service at 172.16.5.5.

    Fix: correct the address, or add the network to internal_networks."""

    code, name, severity = "GW405", "service-outside-internal-networks", "warning"
    summary = "A service lies outside the networks the gateway fronts."
    hint = "correct the address or add its network to internal_networks"

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        # several gateways: a service any of them fronts is inside (routing is validate's: loader/fleet.py)
        internal = ctx.estate.fleet_internal or ctx.estate.gateway.model.internal_networks
        doc = ctx.estate.services.doc
        for name, service in ctx.estate.services.model.services.items():
            for index, net in enumerate(service.addresses):
                if net.prefixlen and not any(net.version == i.version and net.subnet_of(i) for i in internal):  # type: ignore[arg-type]
                    yield self.at(doc, ("services", name, "addresses", index),
                                  f"service {name!r} address {net} is outside the internal networks", ("service", name))


class GatewayItself(ValidationRule):
    """What it does: refuses services whose addresses include one of the gateway's own addresses
    (its tunnel addresses, and its endpoint when that is an address). `validate` refuses them; no
    suppression lifts this.

    Why it matters: access to the gateway is access to the control point of every partner.

    Example: a service at 10.250.0.1/32, the gateway's tunnel address.

    Fix: remove the service; the gateway is not a service partners are granted."""

    code, name, severity = "GW406", "gateway-itself", "error"
    summary = "A service is the gateway itself."
    hint = "do not grant access to the gateway"


RULES = [DestinationAny, DestinationTooBroad, WidePortRange, InsecureService, ServiceOutsideInternalNetworks, GatewayItself]
