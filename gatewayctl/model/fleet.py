"""gateway.yaml for several gateways: the settings they share, and each gateway's own under `gateways:`.

    classifications: [...]          # shared: what a partner's stage means is the same everywhere
    stages: {...}
    lint: {...}                     # shared, as are limits, suppressions, exceptions and owner
    deny_logging: {...}             # shared defaults a gateway may override
    gateways:
      gw-fra-1: {wireguard: {...}, internal_networks: [...], auth: {...}, ha: {...}}
      gw-dal-1: {...}

An estate written for one gateway (name, wireguard and internal_networks at the top of gateway.yaml)
is the one-gateway case and loads unchanged. The loader turns each entry of `gateways:` into the
GatewayFile that entry and the shared settings make (loader/fleet.py), so everything after loading
works on one gateway's settings, as it always has.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, create_model, model_validator
from pydantic.fields import FieldInfo

from gatewayctl.model.gateway import DenyLogging, Firewall, GatewayFile, HostPaths, check_classifications
from gatewayctl.model.types import Identifier, LongText, Strict, Text

# The settings that belong to one gateway; every other field of GatewayFile is shared by the fleet.
SITE_FIELDS = ("description", "owner", "wireguard", "internal_networks", "auth", "host", "ha", "deny_logging", "firewall")
# Site settings that, left out, come from the shared settings of the same name.
INHERITED = ("deny_logging", "firewall", "host")


def _fields(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: (GatewayFile.model_fields[name].annotation, GatewayFile.model_fields[name]) for name in names}


_site_fields = _fields(tuple(f for f in SITE_FIELDS if f not in INHERITED and f not in ("description", "owner")))
_site_fields.update({
    "description": (LongText, Field(default="", description="what this gateway is for, e.g. its site")),
    "owner": (Text | None, Field(default=None, description="who runs this gateway (default: the shared owner)")),
    "deny_logging": (DenyLogging | None, Field(default=None, description="this gateway's deny logging (default: the shared one)")),
    "firewall": (Firewall | None, Field(default=None, description="this gateway's nftables table (default: the shared one)")),
    "host": (HostPaths | None, Field(default=None, description="paths on this gateway's host (default: the shared ones)")),
})
GatewaySite = create_model("GatewaySite", __base__=Strict, __doc__="One gateway of several: its own settings.",
                           **_site_fields)

_shared = _fields(tuple(n for n in GatewayFile.model_fields
                        if n != "name" and (n not in SITE_FIELDS or n in INHERITED or n == "owner")))
def _not_all(name: str) -> str:
    if name == "all":  # a partner's `gateways: all` means every gateway
        raise ValueError("may not be 'all': a partner's `gateways: all` means every gateway")
    return name


GatewayName = Annotated[Identifier, AfterValidator(_not_all)]
_shared["gateways"] = (dict[GatewayName, GatewaySite], FieldInfo(  # type: ignore[valid-type]
    annotation=dict[GatewayName, GatewaySite], min_length=1,  # type: ignore[valid-type]
    description="the gateways of this estate by name, each with its own WireGuard interface, pool, internal networks "
                "and host settings (docs/fleet.md)"))
_FleetBase = create_model("_FleetBase", __base__=Strict, **_shared)


class FleetFile(_FleetBase):  # type: ignore[misc,valid-type]
    """gateway.yaml of an estate with several gateways."""

    @model_validator(mode="after")
    def _classifications_known(self) -> FleetFile:
        check_classifications(self.classifications, self.stages)
        return self


def site_settings(fleet: Any, name: str) -> dict[str, Any]:
    """The fields of the GatewayFile for gateway `name` of `fleet` (a FleetFile): shared settings with
    the gateway's own on top."""
    site = fleet.gateways[name]
    merged = {n: getattr(fleet, n) for n in GatewayFile.model_fields if n != "name" and (n not in SITE_FIELDS or n in INHERITED)}
    merged["owner"] = site.owner if site.owner is not None else fleet.owner
    for n in SITE_FIELDS:
        if n == "owner":
            continue
        value = getattr(site, n)
        if value is not None or n not in INHERITED:
            merged[n] = value
    merged["name"] = name
    return merged
