"""The pipeline stages composed: load -> validate -> compile. Used by every command."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gatewayctl.compile.compiler import compile_estate
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.loader.profiles import Estate, gc_paused, load_estate
from gatewayctl.validate import validate_estate

if TYPE_CHECKING:
    from cryptography import x509

UTC = dt.UTC


@dataclass(frozen=True)
class Compiled:
    """The validated estate and the policy compiled from it."""

    estate: Estate
    policy: CompiledPolicy
    cas: dict[str, list[x509.Certificate]] = field(default_factory=dict)  # CA files by relative path


def parse_at(text: str | None) -> dt.datetime:
    """`YYYY-MM-DD` (00:00 UTC that day), an ISO date-time, or now when None."""
    if text is None:
        return dt.datetime.now(UTC).replace(microsecond=0)
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=UTC)
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compile_profiles(root: Path, at: dt.datetime) -> Compiled:
    """Load, validate and compile; raises ProfileErrors listing every problem."""
    partial = load_estate(root)
    with gc_paused():
        estate, cas = validate_estate(partial)
        return Compiled(estate, compile_estate(estate, cas, at), cas)
