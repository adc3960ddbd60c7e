"""The pipeline stages composed: load -> validate -> compile. Used by every command."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gatewayctl.compile.compiler import compile_estate
from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.loader.profiles import Estate, gc_paused, load_estate
from gatewayctl.model.types import DATE_MAX, DATE_MIN
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
    """`YYYY-MM-DD` (00:00 UTC that day), an ISO date-time, or now when None, in UTC; raises ValueError
    for text that is neither, and AtOutOfRange for an instant whose UTC date is outside DATE_MIN..DATE_MAX."""
    if text is None:
        return dt.datetime.now(UTC).replace(microsecond=0)
    try:
        if len(text) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=UTC)
        else:
            value = dt.datetime.fromisoformat(text)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError:
        raise ValueError(f"--at {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    except OverflowError:  # 9999-12-31T23:00-05:00: a valid text whose UTC instant no datetime holds
        value = None
    if value is None or not DATE_MIN <= value.date() <= DATE_MAX:
        # Grant lengths and expiry timeouts are counted from this instant; profile dates are held to
        # the same range, so that every count stays within what dates and nftables timeouts hold.
        raise AtOutOfRange(f"--at {text!r}: must be an instant from {DATE_MIN} to {DATE_MAX} (UTC), "
                           "the range every profile date is held to")
    return value


class AtOutOfRange(ValueError):
    """An --at instant outside DATE_MIN..DATE_MAX (UTC); the message names the range."""


def compile_profiles(root: Path, at: dt.datetime, gateway: str | None = None) -> Compiled:
    """Load, validate and compile (for `gateway`, in an estate of several: loader/fleet.py); raises
    ProfileErrors listing every problem."""
    partial = load_estate(root, gateway)
    with gc_paused():
        estate, cas = validate_estate(partial)
        return Compiled(estate, compile_estate(estate, cas, at), cas)
