"""The rule base class and the context every rule reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from cryptography import x509

from gatewayctl.lint.finding import Finding
from gatewayctl.loader.profiles import Estate, Loaded
from gatewayctl.loader.yaml12 import Document
from gatewayctl.model import PartnerFile
from gatewayctl.model.gateway import LintSettings


@dataclass(frozen=True)
class LintContext:
    """What rules look at: the schema-valid estate, its CA certificates, the date, the thresholds."""

    estate: Estate
    cas: dict[str, list[x509.Certificate]]
    at: dt.datetime

    @property
    def today(self) -> dt.date:
        return self.at.date()

    @property
    def settings(self) -> LintSettings:
        return self.estate.gateway.model.lint

    def partners(self) -> Iterator[Loaded[PartnerFile]]:
        return iter(self.estate.partners)


class Rule:
    """One lint rule. Subclasses set the class attributes and implement `check`.

    The docstring of a rule has four parts, "What it does", "Why it matters", "Example" and
    "Fix", from which docs/rules.md is generated."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str]
    summary: ClassVar[str]
    hint: ClassVar[str]

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        raise NotImplementedError

    def at(self, doc: Document, loc: tuple[int | str, ...], message: str, obj: tuple[str, ...]) -> Finding:
        """A finding of this rule pointing at `loc` in `doc`, attached to object `obj` (for suppressions)."""
        return Finding(doc.shown_path, doc.line_of(loc), self.code, self.name, self.severity, message, self.hint, obj)


class ValidationRule(Rule):
    """A rule whose problems `validate` itself refuses (no suppression lifts them): its findings come
    from the validation errors that carry its code, so it checks nothing of its own."""

    from_validation: ClassVar[bool] = True

    def check(self, ctx: LintContext) -> Iterator[Finding]:
        return iter(())
