"""The profile reference (docs/profile-reference.md), generated from the JSON Schema."""

from __future__ import annotations

from typing import Any

from gatewayctl.model.jsonpatterns import endpoint_schema, interface_schema, network_schema, port_spec_schema
from gatewayctl.schema import FILES, json_schema

INTRO = """# Profile reference

Generated from the schema by `gatewayctl schema --format markdown`; do not edit by hand
(a test fails when this file is stale).

A profiles folder holds `gateway.yaml`, `services.yaml` and one `partners/<id>.yaml` per
partner (sub-folders of `partners/` are allowed). Files are YAML 1.2: `NO`, `yes` and `22:22`
stay text, duplicate keys, anchors/aliases and custom tags are errors, and so is any field
not listed here. Dates are `YYYY-MM-DD` and mean whole days in UTC; an `expires` date is the
last day of access. Every date lies from 1970-01-01 to 2100-12-31: an expiry becomes a kernel
timeout, and nftables refuses the whole table when one is about 584 years away.

Free text (names, references, justifications, approvers, owners) is one line of text, not blank;
descriptions may also hold newlines and tabs. Refused in all of them: other control characters
(C0, DEL and C1, including U+0085), the bidirectional controls U+202A-U+202E, U+2066-U+2069,
U+200E, U+200F and U+061C, and the separators U+2028 and U+2029.

JSON Schemas for editors and CI are in `docs/schemas/` (written by `gatewayctl schema --output-dir DIR`):
`gateway.schema.json`, `services.schema.json`, `partner.schema.json`, `policy-test.schema.json`
(for `tests/*.yaml`) and `profile.schema.json` (any of them; map each file to its own kind for
clearer messages). Their patterns are ECMA-262 in Unicode mode and their formats standard ones:
check-jsonschema with its defaults (`check-jsonschema --schemafile docs/schemas/partner.schema.json
partners/*.yaml`; the tests run it) flags a typo'd field, a bad CIDR or a port outside 1-65535.
Editors using yaml-language-server take the same schemas through a first line
`# yaml-language-server: $schema=PATH` (not tested here). What a schema cannot say (host bits set, a
reversed port range, addresses that are not the partner's, cross-file references) is checked by
`gatewayctl validate`, which has the last word.

`build` writes each peer's WireGuard config to `partners/<id>/<interface>.conf`. `wg-quick up`
takes the interface name from the file name (at most 15 characters of `[a-zA-Z0-9_=+.-]`), so the
interface name is the peer name when that has at most 15 characters, and otherwise the peer name's
first 10 characters, `-` and the first 4 hex digits of the SHA-256 of the whole peer name
(`umbrella-raccoon` becomes `umbrella-r-9d31.conf`; `printf %s NAME | sha256sum | cut -c1-4`).
`validate` refuses two peers of one partner that would get the same file.
"""

FORMATS = {"date": "date (YYYY-MM-DD)"}
# Field schemas that stand for one kind of value, shown by that name rather than by their patterns
SHAPES = [(network_schema(), "IP address or network (CIDR)"), (interface_schema(), "IP address/prefix"),
          (port_spec_schema(), "port (1-65535) or range 'first-last'"), (endpoint_schema(), "host:port")]


def profile_reference() -> str:
    """Return the Markdown reference of every profile file and nested object."""
    parts = [INTRO]
    seen: set[str] = set()
    for kind, filename in FILES.items():
        schema = json_schema(kind)
        defs = schema.get("$defs", {})
        parts.append(f"## `{filename}`\n\n{schema.get('description', '')}\n")
        parts.append(_table(schema, defs))
        for name in _referenced(schema, defs):
            if name not in seen:
                seen.add(name)
                parts.append(f"### {name}\n\n{defs[name].get('description', '')}\n")
                parts.append(_table(defs[name], defs))
    return "\n".join(parts)


def _referenced(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Names of the definitions reachable from `schema`, in order of first appearance."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in found:
                    found.append(name)
                    walk(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema.get("properties", {}))
    return found


def _table(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        default = f"`{prop['default']}`" if "default" in prop and prop["default"] not in (None, "", [], {}) else ""
        rows.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | {default} | "
                    f"{_escape(prop.get('description', ''))} |")
    return "\n".join(rows) + "\n"


def _type(prop: dict[str, Any]) -> str:
    shape = next((name for shape, name in SHAPES if all(prop.get(k) == v for k, v in shape.items())), None)
    if shape is not None:
        return shape
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        names = [_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(names))
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = next(iter(prop.get("patternProperties", {}).values()), prop.get("additionalProperties", {}))
        return f"map of name to {_type(values)}"
    if prop.get("format") in FORMATS:
        return FORMATS[prop["format"]]
    extra = prop.get("format") or ""
    bounds = [f"{sym} {prop[key]}" for key, sym in (("minimum", "≥"), ("maximum", "≤")) if key in prop]
    return " ".join([kind, f"({extra})" if extra else "", ", ".join(bounds)]).strip()


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
