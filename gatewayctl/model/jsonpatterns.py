"""Patterns the published JSON Schema gives address and port fields, so editors flag a bad CIDR or port.

They are written for ECMA-262 in Unicode mode (what JSON Schema tools and editors run) and are also
valid Python. They catch what a person mistypes (a /33, an octet of 300, port 70000, a stray
character); what no pattern can say (host bits set, a reversed port range, whose address it is) is
left to `gatewayctl validate`. Where gatewayctl accepts a spelling a pattern could only match at great
length (leading zeros in a prefix length or port range), the pattern accepts a little more rather
than flag a file gatewayctl takes.
"""

from __future__ import annotations

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"  # no leading zeros: Python's ipaddress refuses them
IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_GROUP = r"[0-9A-Fa-f]{1,4}"


def _ipv6() -> str:
    """Every RFC 4291 text form: eight groups, one '::' standing for one or more zero groups, and an
    IPv4 tail in place of the last two groups."""
    forms = [rf"({_GROUP}:){{7}}{_GROUP}", rf"({_GROUP}:){{6}}{IPV4}"]
    for groups, tail in ((8, ""), (6, IPV4)):
        # i groups before '::', at most groups - 1 - i after it (the '::' stands for at least one)
        for before in range(groups):
            left = {0: "", 1: _GROUP}.get(before, rf"({_GROUP}:){{{before - 1}}}{_GROUP}")
            room = groups - 1 - before
            if tail:
                right = (rf"({_GROUP}:){{0,{room}}}" if room else "") + tail
            else:
                right = {0: "", 1: f"({_GROUP})?"}.get(room, rf"({_GROUP}(:{_GROUP}){{0,{room - 1}}})?")
            forms.append(f"{left}::{right}")
    return "(" + "|".join(f"({form})" for form in forms) + ")"


IPV6 = _ipv6()
# gatewayctl reads prefix lengths with Python's int(): leading zeros are accepted ("/024")
IPV4_PREFIX = r"/0*(3[0-2]|[12]?[0-9])"
IPV6_PREFIX = r"/0*(12[0-8]|1[01][0-9]|[1-9]?[0-9])"
ADDRESS_MAX = 49  # the longest address text gatewayctl reads (model/types.py)


def network_schema() -> dict[str, object]:
    """Schema of an address or network in CIDR form (the prefix length optional): IPv4 or IPv6."""
    return {"type": "string", "maxLength": ADDRESS_MAX, "anyOf": [
        {"title": "IPv4 address or network", "pattern": f"^{IPV4}({IPV4_PREFIX})?$"},
        {"title": "IPv6 address or network", "pattern": f"^{IPV6}({IPV6_PREFIX})?$"},
    ]}


def interface_schema() -> dict[str, object]:
    """Schema of an address with its prefix length (10.250.0.1/16): IPv4 or IPv6."""
    return {"type": "string", "maxLength": ADDRESS_MAX, "anyOf": [
        {"title": "IPv4 address/prefix", "pattern": f"^{IPV4}{IPV4_PREFIX}$"},
        {"title": "IPv6 address/prefix", "pattern": f"^{IPV6}{IPV6_PREFIX}$"},
    ]}


_PORT = r"0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
PORT_RANGE = rf"^{_PORT}-{_PORT}$"


def port_spec_schema() -> dict[str, object]:
    """Schema of a port (443) or a range written first-last ('8000-8080'), every port 1-65535."""
    return {"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {"type": "string", "maxLength": 11, "pattern": PORT_RANGE},
    ]}


# host:port or [IPv6]:port, as model/types.py's _endpoint reads it
ENDPOINT = rf"^(\[{IPV6}\]|[A-Za-z0-9.-]+):{_PORT}$"


def endpoint_schema() -> dict[str, object]:
    """Schema of host:port or [IPv6]:port."""
    return {"type": "string", "pattern": ENDPOINT}
