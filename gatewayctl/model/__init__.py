"""The profile schema (pydantic v2): what engineers write in git."""

from gatewayctl.model.gateway import GatewayFile
from gatewayctl.model.partner import PartnerFile
from gatewayctl.model.services import ServicesFile

__all__ = ["GatewayFile", "PartnerFile", "ServicesFile"]
