"""A finding: a small immutable record, printed as `path:line: CODE message`."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "error")


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    code: str
    name: str
    severity: str
    message: str
    hint: str
    obj: tuple[str, ...] = ()
    suppressed: bool = False
    suppression_reason: str | None = None
    gateways: tuple[str, ...] = ()  # in an estate of several gateways: the gateways that report it

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"
