"""The profile schema (pydantic v2): what engineers write in git.

The three file models are imported when first asked for (PEP 562), not with the package: a command
that needs only `gatewayctl.model.patterns` or the field types does not build every model."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatewayctl.model.gateway import GatewayFile
    from gatewayctl.model.partner import PartnerFile
    from gatewayctl.model.services import ServicesFile

__all__ = ["GatewayFile", "PartnerFile", "ServicesFile"]
_WHERE = {"GatewayFile": "gateway", "PartnerFile": "partner", "ServicesFile": "services"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"gatewayctl.model.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
