"""Keep the gateway's own file system out of a partner's report.

A partner's report is handed outside the company. The collector already leaves out the fields that
are paths (lint finding files, policy test files, CA files by name); this last pass replaces any
path still inside free text (a host error naming the state folder, a lint message naming a key
file) with a marker, so a new message that quotes a path cannot leak it."""

from __future__ import annotations

import re
from typing import Any

WITHHELD = "(path withheld)"
# An absolute path: a "/" not inside a word, an address ("10.0.0.0/8", "tcp/443") or a URL ("https://").
ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@=~-]+/)*[\w.+@=~-]+/?")
# A relative path of a file kind the gateway keeps: profiles, tests, keys, certificates, state.
RELATIVE = re.compile(r"(?<![\w./~-])(?:[\w.~-]+/)+[\w.~-]+\.(?:ya?ml|pem|crt|cer|crl|key|psk|json|jsonl|sock|conf|log)\b")
KEEP = frozenset({"public_key"})  # base64 keys may hold "/" anywhere, even first


def scrub(text: str) -> str:
    """`text` with every path in it replaced by the marker."""
    return RELATIVE.sub(WITHHELD, ABSOLUTE.sub(WITHHELD, text))


def withhold_paths(value: Any, key: str = "") -> Any:
    """A copy of the JSON-able `value` with every path in its strings withheld (public keys kept)."""
    if isinstance(value, str):
        return value if key in KEEP else scrub(value)
    if isinstance(value, list):
        return [withhold_paths(v, key) for v in value]
    if isinstance(value, dict):
        return {k: withhold_paths(v, k) for k, v in value.items()}
    return value
