"""JSON Schemas of the profile files, the policy test files and the saved plan, generated from the pydantic models.

Every pattern in them is valid ECMA-262 in Unicode mode (what check-jsonschema, editors and other
JSON Schema tools run), and every format is a standard one; tests/test_jsonschema_tools.py runs
check-jsonschema on them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gatewayctl.model import GatewayFile, PartnerFile, ServicesFile
from gatewayctl.model.fleet import FleetFile
from gatewayctl.plan.savedfile import SavedPlan
from gatewayctl.policy.assertions import PolicyTestFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KINDS: dict[str, type[BaseModel]] = {"gateway": GatewayFile, "services": ServicesFile, "partner": PartnerFile,
                                     "policy-test": PolicyTestFile}
# Which files each schema is for (docs, and the file names `schema --output-dir` writes)
FILES = {"gateway": "gateway.yaml", "services": "services.yaml", "partner": "partners/<id>.yaml",
         "policy-test": "tests/<name>.yaml"}

# What the policy test models check in their validators, said in the schema so editors see it too,
# with the descriptions the reference shows (the models in policy/assertions.py carry few).
_POLICY_TEST_RULES: dict[str, dict[str, Any]] = {
    "PolicyTestFile": {"description": "Policy tests kept with the profiles: what partners must and must not reach, "
                                      "checked by `gatewayctl test` against the compiled policy."},
    "PolicyTest": {"description": "One assertion: a partner (or * for every partner) and exactly one of "
                                  "can_reach or cannot_reach.",
                   "oneOf": [{"required": ["can_reach"]}, {"required": ["cannot_reach"]}]},
    "Reach": {"minProperties": 1, "maxProperties": 1},  # exactly one of service, classification, to
}
_POLICY_TEST_FIELDS = {
    ("PolicyTestFile", "tests"): "the assertions, at least one",
    ("PolicyTest", "name"): "what the assertion says, shown when it fails",
    ("PolicyTest", "can_reach"): "what the partner must reach",
    ("PolicyTest", "cannot_reach"): "what the partner must not reach",
    ("Reach", "service"): "a service of services.yaml",
    ("Reach", "classification"): "every service of this classification",
}


# Files gatewayctl writes for programs: `plan -o` (read back by `apply PLAN`). Not part of "all".
OUTPUTS: dict[str, type[BaseModel]] = {"plan": SavedPlan}


# Other forms a kind of file may take: gateway.yaml of an estate of several gateways (model/fleet.py).
FORMS: dict[str, tuple[type[BaseModel], ...]] = {"gateway": (FleetFile,)}


def json_schema(kind: str = "all") -> dict[str, Any]:
    """Return a draft 2020-12 schema for one kind of file, or for any of them ("all": a file
    validates when it is one of the kinds); or of a file gatewayctl writes (OUTPUTS)."""
    if kind != "all" and kind not in FORMS:
        schema = {**KINDS, **OUTPUTS}[kind].model_json_schema()
        schema["$schema"] = DRAFT
        return _with_rules(schema)
    chosen = [KINDS[kind], *FORMS[kind]] if kind != "all" else [m for k, m in KINDS.items() for m in (m, *FORMS.get(k, ()))]
    refs, combined = models_json_schema([(model, "validation") for model in chosen],
                                        title="gatewayctl profile file" if kind == "all" else chosen[0].__name__)
    combined["$schema"] = DRAFT
    combined["oneOf"] = [refs[(model, "validation")] for model in chosen]
    return _with_rules(combined)


def _with_rules(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the policy test rules and descriptions added where the policy test models appear."""
    defs = schema.get("$defs", {})
    found = {name: defs[name] for name in _POLICY_TEST_RULES if name in defs}
    if schema.get("title") == "PolicyTestFile":
        found["PolicyTestFile"] = schema
    for name, node in found.items():
        node.update(copy.deepcopy(_POLICY_TEST_RULES[name]))
    for (name, field), text in _POLICY_TEST_FIELDS.items():
        if name in found:
            found[name]["properties"][field].setdefault("description", text)
    return schema


def schema_text(kind: str = "all") -> str:
    """The schema as written and printed: indented JSON with sorted keys and a final newline."""
    return json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"


def schema_file_name(kind: str) -> str:
    """The file name `gatewayctl schema --output-dir` gives the schema of `kind` (profile.schema.json for all)."""
    return "profile.schema.json" if kind == "all" else f"{kind}.schema.json"


def write_schemas(folder: Path) -> list[Path]:
    """Write the schema of every kind, and the combined one, into `folder` (created if missing);
    return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ["all", *KINDS, *OUTPUTS]:
        path = folder / schema_file_name(kind)
        path.write_text(schema_text(kind))
        written.append(path)
    return written
