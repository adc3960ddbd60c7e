"""Field types shared by every profile file, each with the requirement it enforces."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import CoreSchema

from gatewayctl.model.jsonpatterns import endpoint_schema, interface_schema, network_schema, port_spec_schema
from gatewayctl.model.patterns import (
    ABSOLUTE_PATTERN as ABSOLUTE_PATTERN,
)
from gatewayctl.model.patterns import (
    EMAIL_PATTERN as EMAIL_PATTERN,
)
from gatewayctl.model.patterns import (
    IDENTIFIER_PATTERN as IDENTIFIER_PATTERN,
)
from gatewayctl.model.patterns import (
    INTERFACE_PATTERN as INTERFACE_PATTERN,
)
from gatewayctl.model.patterns import (
    LONG_TEXT_PATTERN as LONG_TEXT_PATTERN,
)
from gatewayctl.model.patterns import (
    OID_PATTERN as OID_PATTERN,
)
from gatewayctl.model.patterns import (
    PATTERN_HELP as PATTERN_HELP,
)
from gatewayctl.model.patterns import (
    RELATIVE_PATTERN as RELATIVE_PATTERN,
)
from gatewayctl.model.patterns import (
    TEXT_PATTERN as TEXT_PATTERN,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# Every date in a profile lies in this range. An expiry becomes an nft element timeout; the kernel
# refuses timeouts past about 584 years (2**64 ns: nft 1.0.6 here loads 213503d and refuses 213504d
# with "Numerical result out of range", for the whole table). A fixed horizon keeps a file's validity
# independent of the day it is checked, and 2100 is far below that limit from any date in range.
DATE_MIN = dt.date(1970, 1, 1)
DATE_MAX = dt.date(2100, 12, 31)


def _bound_dates(node: object) -> None:
    # Done once per model class, when pydantic builds its validator: no cost per validated file.
    if isinstance(node, dict):
        if node.get("type") == "date":
            node.setdefault("ge", DATE_MIN)
            node.setdefault("le", DATE_MAX)
            node.setdefault("metadata", {})["pydantic_js_updates"] = {
                "formatMinimum": DATE_MIN.isoformat(), "formatMaximum": DATE_MAX.isoformat()}
        for value in node.values():
            _bound_dates(value)
    elif isinstance(node, list):
        for item in node:
            _bound_dates(item)


class Strict(BaseModel):
    """Base of every profile model: unknown fields are errors; objects are immutable; every date field
    (whatever module declares it) is bounded to DATE_MIN..DATE_MAX inside pydantic's compiled validator."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[BaseModel], handler: GetCoreSchemaHandler) -> CoreSchema:
        """The model's schema, with the date bounds added to every date in it (nested, optional or listed)."""
        schema = handler(source)
        _bound_dates(schema)
        return schema



Text = Annotated[str, StringConstraints(max_length=200, pattern=TEXT_PATTERN)]
LongText = Annotated[str, StringConstraints(max_length=4000, pattern=LONG_TEXT_PATTERN)]
Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN),
    Field(description="lower-case letters, digits, '-' and '_', starting with a letter, at most 32 characters"),
]
InterfaceName = Annotated[
    str,
    StringConstraints(pattern=INTERFACE_PATTERN),
    Field(description="a Linux interface name: a letter, then letters, digits, '-' or '_', at most 15 characters"),
]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=200)]
AbsolutePath = Annotated[
    str,
    StringConstraints(pattern=ABSOLUTE_PATTERN, max_length=400),
    Field(description="an absolute path on the gateway host (letters, digits and ._/+- only)"),
]


def _relative(value: str) -> str:
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError("must be a path inside the profiles folder: relative, without '..'")
    return value


RelativePath = Annotated[
    str,
    StringConstraints(pattern=RELATIVE_PATTERN, max_length=400),
    AfterValidator(_relative),
    Field(description="a path relative to the profiles folder, without '..'"),
]
Oid = Annotated[str, StringConstraints(pattern=OID_PATTERN)]


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def _duration(value: Any) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]{0,5}[smh]", value):
        raise ValueError("must be a duration such as 90s, 15m or 8h (seconds, minutes or hours)")
    seconds = int(value[:-1]) * DURATION_UNITS[value[-1]]
    if not 10 <= seconds <= 86400:
        raise ValueError(f"must be between 10s and 24h, found {value} ({seconds} s)")
    return seconds


Duration = Annotated[
    int,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]{0,5}[smh]$"}),
    Field(description="a duration: a number followed by s, m or h (10s to 24h)"),
]

# strict: true/false and "443" are not ports
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


# Address text holds only these characters. Python's ipaddress also takes an IPv6 zone ("fd00::%eth0/64",
# where the zone may be any text, newlines included) and prints it back verbatim: refused here, so no
# address can carry text into a rendered config or ruleset.
_ADDRESS_TEXT = re.compile(r"[0-9A-Fa-f:./]{2,49}")


def _address_text(value: str) -> None:
    if not _ADDRESS_TEXT.fullmatch(value):
        raise ValueError("may hold only digits, hex letters, ':', '.' and '/' (no IPv6 zone such as %eth0, no spaces)")


def _network(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise ValueError("must be an address or network in text form, such as 10.1.0.0/24 or fd00::/64")
    _address_text(value)
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address or network") from None
    raise ValueError(f"has host bits set; the network is {loose}")


def _interface(value: Any) -> IPInterface:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError("must be an address with its prefix length, such as 10.250.0.1/16")
    _address_text(value)
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address with a prefix length") from None


Network = Annotated[
    IPNetwork,
    BeforeValidator(_network),
    WithJsonSchema(network_schema()),
    Field(description="an IPv4 or IPv6 address or network in CIDR form, host bits clear"),
]
InterfaceAddress = Annotated[
    IPInterface,
    BeforeValidator(_interface),
    WithJsonSchema(interface_schema()),
    Field(description="an IPv4 or IPv6 address with its prefix length, such as 10.250.0.1/16"),
]


def _wg_key(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a WireGuard public key: 44 characters of base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64; a WireGuard key is 44 characters of base64 ending in '='") from None
    if len(raw) != 32 or len(value) != 44:
        raise ValueError(f"decodes to {len(raw)} bytes; a WireGuard key is 32 bytes (44 characters of base64)")
    if raw == bytes(32):
        raise ValueError("is the all-zero key, which WireGuard treats as no key")
    return value


WgPublicKey = Annotated[str, BeforeValidator(_wg_key), Field(description="a WireGuard public key (44 characters of base64)")]


def _endpoint(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be host:port, such as vpn.example.com:51820 or [2001:db8::1]:51820")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([A-Za-z0-9.-]+):([0-9]{1,5})", value)
    if not match:
        raise ValueError("must be host:port, such as vpn.example.com:51820 or [2001:db8::1]:51820")
    host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    return value


Endpoint = Annotated[str, BeforeValidator(_endpoint), WithJsonSchema(endpoint_schema()),
                     Field(description="host:port or [IPv6]:port")]


def parse_port_spec(value: Any) -> tuple[int, int]:
    """Return (first, last) of a port or 'first-last' range; raises ValueError with the requirement."""
    if isinstance(value, bool):
        raise ValueError("a port must be a number or a range 'first-last', not true/false")
    if isinstance(value, int):
        first = last = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}-[0-9]{1,5}", value):
        first, last = (int(part) for part in value.split("-"))
    else:
        raise ValueError("a port must be a number (443) or a range written first-last ('8000-8080')")
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise ValueError("ports must be between 1 and 65535")
    if first > last:
        raise ValueError(f"range {first}-{last} is reversed; write {last}-{first}")
    return first, last


def _port_spec(value: Any) -> int | str:
    parse_port_spec(value)
    return value  # type: ignore[no-any-return]


PortSpec = Annotated[
    int | str,
    BeforeValidator(_port_spec),
    WithJsonSchema(port_spec_schema()),
    Field(description="a port (443) or an inclusive range written first-last ('8000-8080')"),
]


class Suppression(Strict):
    """An accepted exception to one lint rule, on the object it exempts: with a reason and an end."""

    rule: Annotated[str, StringConstraints(pattern=r"^(GW[0-9]{3}|[a-z][a-z0-9-]+)$")] = Field(
        description="the rule's code (GW404) or name (insecure-service)")
    reason: Text = Field(description="why the exception is acceptable, for the auditor")
    expires: dt.date = Field(description="last day the exception holds (YYYY-MM-DD)")
    approved_by: Text | None = None
