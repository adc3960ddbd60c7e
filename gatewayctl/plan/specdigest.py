"""The digest of a desired state, and the keys of applied.json that hold one: apart from plan/spec.py
(which renders the ruleset, and so imports jinja2 and the templates), because revoke reckons the
digest of applied.json again after each revocation and needs nothing else of the planner."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatewayctl.plan.spec import GatewaySpec

# The keys spec_to_json writes: applied.json holds them beside apply's own records (digest, revision, ...).
SPEC_KEYS = ("ifname", "listen_port", "public_key", "private_key_file", "mtu", "addresses", "routes", "table_name",
             "needs_forwarding4", "needs_forwarding6", "peers", "table", "element_ends")


def digest(spec: GatewaySpec | dict[str, Any]) -> str:
    """The sha256 of the spec's canonical JSON (a spec, or spec_to_json of one), timers left out."""
    if not isinstance(spec, dict):
        from gatewayctl.plan.spec import spec_to_json

        spec = spec_to_json(spec)
    data = {k: v for k, v in spec.items() if k != "element_ends"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
