"""Policy tests kept with the profiles (tests/*.yaml), evaluated against the compiled policy."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from gatewayctl.compile.ir import CompiledPolicy
from gatewayctl.errors import ProfileError, ProfileErrors, display_path
from gatewayctl.loader.profiles import _translate
from gatewayctl.loader.yaml12 import Document, read_document
from gatewayctl.model.types import Identifier, Strict, Text
from gatewayctl.policy.explain import grant_json
from gatewayctl.policy.flows import Target, matches, parse_target

TESTS_DIR = "tests"


class Reach(Strict):
    """What an assertion is about: a service, everything of a classification, or a target."""

    service: Identifier | None = None
    classification: Identifier | None = None
    to: str | None = Field(default=None, description="ADDRESS[/PREFIX][:PORT][/PROTO], e.g. 10.1.0.5:443/tcp")

    @model_validator(mode="after")
    def _one(self) -> Reach:
        if sum(x is not None for x in (self.service, self.classification, self.to)) != 1:
            raise ValueError("give exactly one of service, classification or to")
        if self.to is not None:
            parse_target(self.to)
        return self


class PolicyTest(Strict):
    name: Text
    partner: Identifier | Literal["*"] = Field(description="a partner id, or * for every partner")
    can_reach: Reach | None = None
    cannot_reach: Reach | None = None
    gateway: Identifier | None = Field(
        default=None, description="in an estate of several gateways: the gateway this test is about; without it "
        "the test is about the estate as a whole: can_reach holds through some gateway, cannot_reach through none")

    @model_validator(mode="after")
    def _one(self) -> PolicyTest:
        if (self.can_reach is None) == (self.cannot_reach is None):
            raise ValueError("give exactly one of can_reach or cannot_reach")
        return self


class PolicyTestFile(Strict):
    tests: list[PolicyTest] = Field(min_length=1)


@dataclass(frozen=True)
class Loaded:
    test: PolicyTest
    doc: Document
    index: int

    @property
    def where(self) -> str:
        return f"{self.doc.shown_path}:{self.doc.line_of(('tests', self.index))}"


@dataclass(frozen=True)
class Outcome:
    test: Loaded
    passed: bool
    detail: str
    evidence: tuple[dict[str, Any], ...]


def load_tests(root: Path) -> list[Loaded]:
    """The assertions in `root`/tests/*.yaml; raises ProfileErrors listing every bad file or entry.

    Each file is read as profile input is (a regular file below `root`, no link on the way): a
    linked test file or tests folder is refused, so its target is never read or echoed."""
    folder = root / TESTS_DIR
    errors: list[ProfileError] = []
    loaded: list[Loaded] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            doc = read_document(path, display_path(path), root)
            model = PolicyTestFile.model_validate(doc.data)
        except ProfileErrors as exc:
            errors.extend(exc.errors)
            continue
        except ValidationError as exc:
            errors.extend(_translate(exc, doc, PolicyTestFile))
            continue
        loaded += [Loaded(t, doc, i) for i, t in enumerate(model.tests)]
    if errors:
        raise ProfileErrors(errors)
    return loaded


def targets(reach: Reach, services: dict[str, Any]) -> list[tuple[str, Target]]:
    """The (label, target) pairs an assertion covers."""
    if reach.to is not None:
        return [(reach.to, parse_target(reach.to))]
    chosen = [(n, s) for n, s in services.items() if n == reach.service or s.classification == reach.classification]
    result = []
    for name, svc in chosen:
        for net in svc.addresses:
            ports: list[str | None] = [str(p) for p in svc.ports] or [None]
            for spec in ports:
                port = int(spec.split("-")[0]) if spec else None
                result.append((f"{name} ({net}{':' + spec if spec else ''}/{svc.protocol})",
                               Target(ipaddress.ip_network(net), svc.protocol, port)))
    return result


def evaluate(loaded: Loaded, policy: CompiledPolicy, services: dict[str, Any]) -> Outcome:
    test = loaded.test
    reach = test.can_reach or test.cannot_reach
    assert reach is not None
    partner = None if test.partner == "*" else test.partner
    if partner is not None and policy.partner(partner) is None:
        return Outcome(loaded, False, f"no partner {partner!r} in the profiles", ())
    pairs = targets(reach, services)
    if reach.service and not pairs:
        return Outcome(loaded, False, f"no service {reach.service!r} in the catalogue", ())
    hits = {label: matches(policy, target, partner=partner) for label, target in pairs}
    evidence = tuple({"target": label, **grant_json(g)} for label, found in hits.items() for m in found for g in m.grants)
    if test.can_reach is not None:
        missing = [label for label, found in hits.items() if not found]
        if reach.service:  # reaching a service: some port of some address of it is enough
            missing = [] if any(hits.values()) else missing
        ok = not missing
        detail = "reached by " + ", ".join(sorted({e["grant"] for e in evidence})) if ok else \
            "no grant allows " + "; ".join(missing)
        return Outcome(loaded, ok, detail, evidence)
    ok = not evidence
    detail = "no grant allows it" if ok else "allowed by " + "; ".join(
        f"{e['grant']} ({e['target']}; approved by {e['approved_by']})" for e in evidence)
    return Outcome(loaded, ok, detail, evidence)


def evaluate_fleet(loaded: Loaded, views: list[tuple[str, CompiledPolicy]], services: dict[str, Any]) -> Outcome:
    """A test against every gateway it is about (`views`: each gateway's policy, in gateway.yaml's order):
    can_reach passes when some gateway lets the flow through, cannot_reach when none does; the detail
    names the gateway(s) behind the verdict. One gateway: `evaluate`, as it is."""
    test = loaded.test
    chosen = [(n, p) for n, p in views if test.gateway in (None, n)]
    if test.gateway is not None and not chosen:
        return Outcome(loaded, False, f"no gateway {test.gateway!r} in the profiles", ())
    if len(views) == 1:
        return evaluate(loaded, chosen[0][1], services)
    present = [(n, p) for n, p in chosen if test.partner == "*" or p.partner(test.partner) is not None]
    where = f"gateway {test.gateway}" if test.gateway else "any gateway"
    if not present:
        return Outcome(loaded, test.cannot_reach is not None, f"no partner {test.partner!r} on {where}", ())
    outcomes = [(n, evaluate(loaded, p, services)) for n, p in present]
    deciding = [(n, o) for n, o in outcomes if o.passed == (test.can_reach is not None)]
    if test.cannot_reach is not None:
        deciding = [(n, o) for n, o in outcomes if not o.passed]
        ok = not deciding
        shown = outcomes if ok else deciding
    else:
        ok = bool(deciding)
        shown = deciding if ok else outcomes
    detail = "; ".join(f"[{n}] {o.detail}" for n, o in shown)
    return Outcome(loaded, ok, detail, tuple(e for _, o in shown for e in o.evidence))
