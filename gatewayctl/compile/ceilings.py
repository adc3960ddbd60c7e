"""Stage ceilings at compile: a grant beyond what its partner's stage allows is not compiled.

The same ceilings as lint rules GW101-GW105 (lint/rules/stage.py): lint reports them, the compiler
enforces them, so an estate whose lint errors were ignored still cannot open more than the stage
allows. Only a standing gateway-owned exception (gateway.yaml `exceptions:`, see exceptions.py)
lets such a grant be compiled, and then a warning says so on every build."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gatewayctl.exceptions import ObjectKey, Standing
from gatewayctl.model import GatewayFile, PartnerFile


@dataclass(frozen=True, slots=True)
class Ceiling:
    """One ceiling a grant goes beyond: the lint rule, the object an exception must name, and why."""

    code: str
    obj: ObjectKey
    reason: str


@dataclass(frozen=True)
class Verdict:
    """What the ceilings decide for one partner, by grant index: why a grant is left out; and for a grant
    compiled under exceptions, a note and the last day the first of them holds (its access ends then)."""

    excluded: dict[int, str]
    excepted: dict[int, str]
    until: dict[int, dt.date]


def judge_partner(gateway: GatewayFile, levels: Mapping[str, str], partner: PartnerFile, skip: Collection[int],
                  at: dt.datetime, exceptions: Mapping[tuple[str, ObjectKey], Standing]) -> Verdict:
    """Decide every grant of `partner` not in `skip` (already left out); `levels` maps services to classifications."""
    verdict = Verdict({}, {}, {})
    stage = gateway.stages[partner.stage]
    if not (stage.max_services or stage.max_grant_days or stage.preshared_key_for or stage.smartcard_for
            or not set(gateway.classifications) <= set(stage.classifications)):
        return verdict  # a stage without any ceiling: nothing to decide, at no cost per grant
    for index in range(len(partner.grants)):
        if index in skip:
            continue
        beyond = _grant_ceilings(gateway, levels, partner, index, at.date())
        open_ = [c for c in beyond if (c.code, c.obj) not in exceptions]
        if open_:
            verdict.excluded[index] = _beyond(partner, open_)
        elif beyond:
            _except(verdict, index, beyond, exceptions)
    _service_count(gateway, partner, set(skip) | set(verdict.excluded), exceptions, verdict)
    return verdict


def _grant_ceilings(gateway: GatewayFile, levels: Mapping[str, str], partner: PartnerFile, index: int,
                    today: dt.date) -> list[Ceiling]:
    stage = gateway.stages[partner.stage]
    grant = partner.grants[index]
    level = levels[grant.service]
    here: ObjectKey = ("grant", partner.id, str(index))
    found = []
    if level not in stage.classifications:
        found.append(Ceiling("GW102", here, f"{grant.service!r} is {level} data, the stage reaches only "
                             f"{', '.join(stage.classifications)}"))
    end = grant.expires or partner.agreement.expires
    days = (end - today).days + 1
    if stage.max_grant_days is not None and days > stage.max_grant_days:
        found.append(Ceiling("GW103", here, f"it runs {days} more days (until {end}), the stage allows {stage.max_grant_days}"))
    if level in stage.preshared_key_for:
        found += [Ceiling("GW104", ("peer", partner.id, str(p)), f"peer {peer.name!r} has no preshared key, which the "
                          f"stage requires for {level} data") for p, peer in enumerate(partner.peers) if not peer.preshared_key_file]
    if level in stage.smartcard_for and not (partner.certificates and partner.certificates.smartcard_required):
        found.append(Ceiling("GW105", ("partner", partner.id), f"the stage requires a smart card for {level} data and "
                             "the partner has no smart-card requirement"))
    return found


def _service_count(gateway: GatewayFile, partner: PartnerFile, left_out: set[int],
                   exceptions: Mapping[tuple[str, ObjectKey], Standing], verdict: Verdict) -> None:
    """GW101: the first `max_services` services granted (in file order) are compiled, later ones are not."""
    limit = gateway.stages[partner.stage].max_services
    if limit is None:
        return
    ceiling = Ceiling("GW101", ("partner", partner.id), f"the stage allows {limit} service(s)")
    kept: list[str] = []
    for index, grant in enumerate(partner.grants):
        if index in left_out or grant.service in kept:
            continue
        if len(kept) < limit:
            kept.append(grant.service)
        elif (ceiling.code, ceiling.obj) in exceptions:
            _except(verdict, index, [ceiling], exceptions)
        else:
            verdict.excluded[index] = _beyond(partner, [Ceiling("GW101", ceiling.obj, f"{ceiling.reason} and {', '.join(kept)} "
                                                        "come first in the file")])


def _beyond(partner: PartnerFile, ceilings: list[Ceiling]) -> str:
    return f"beyond stage {partner.stage!r}: " + "; ".join(f"{c.reason} ({c.code})" for c in ceilings)


def _except(verdict: Verdict, index: int, ceilings: list[Ceiling], exceptions: Mapping[tuple[str, ObjectKey], Standing]) -> None:
    """Record grant `index` as compiled under the exceptions covering `ceilings`."""
    notes = [verdict.excepted[index]] if index in verdict.excepted else []
    for c in ceilings:
        exc = exceptions[(c.code, c.obj)].exception
        notes.append(f"{c.code} excepted by {exc.approved_by!r} until {exc.expires} ({c.reason})")
        verdict.until[index] = min(verdict.until.get(index, exc.expires), exc.expires)
    verdict.excepted[index] = "; ".join(notes)
