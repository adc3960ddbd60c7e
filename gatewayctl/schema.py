"""JSON Schema of the profile files, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gatewayctl.model import GatewayFile, PartnerFile, ServicesFile

KINDS: dict[str, type[BaseModel]] = {"gateway": GatewayFile, "services": ServicesFile, "partner": PartnerFile}


def json_schema(kind: str = "all") -> dict[str, Any]:
    """Return a draft 2020-12 schema for one kind of file, or for any of the three."""
    if kind != "all":
        schema = KINDS[kind].model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        return schema
    refs, combined = models_json_schema([(model, "validation") for model in KINDS.values()],
                                        title="gatewayctl profile file")
    combined["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    combined["oneOf"] = [refs[(model, "validation")] for model in KINDS.values()]
    return combined
