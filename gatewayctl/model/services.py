"""services.yaml: the catalogue of internal services partners may be granted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gatewayctl.model.types import Identifier, LongText, Network, PortSpec, Strict, Suppression, Text


class Service(Strict):
    """One internal service: where it is, how it is reached, and how sensitive it is."""

    description: LongText = Field(default="", description="what the service is, for reviewers")
    owner: Text = Field(description="the team or person accountable for the service")
    classification: Identifier = Field(description="data classification, one of the gateway's classifications")
    addresses: list[Network] = Field(min_length=1, description="addresses or networks the service lives on")
    protocol: Literal["tcp", "udp", "icmp"] = Field(description="tcp, udp or icmp (icmp allows echo requests only)")
    ports: list[PortSpec] = Field(default_factory=list, description="ports or ranges; required for tcp and udp, absent for icmp")
    suppressions: list[Suppression] = Field(default_factory=list, description="accepted lint exceptions for this service")

    @model_validator(mode="after")
    def _ports_fit_protocol(self) -> Service:
        if self.protocol == "icmp" and self.ports:
            raise ValueError(f"an icmp service has no ports; remove ports {self.ports}")
        if self.protocol != "icmp" and not self.ports:
            raise ValueError(f"a {self.protocol} service needs at least one port")
        return self


class ServicesFile(Strict):
    """services.yaml."""

    services: dict[Identifier, Service] = Field(min_length=1, description="services by name")
