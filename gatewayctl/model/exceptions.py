"""gateway.yaml `exceptions:`: lint exceptions the gateway owners grant, each approved and short-lived.

Stage, addressing, certificate and secret rules may be excepted only here (a partner's or a
service's own `suppressions:` may not lift them); any other rule may be excepted here too."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from gatewayctl.model.types import Identifier, Strict, Text

# A grant is named as its compiled id names it: the service, and `#2`, `#3`... for the second and later
# grants of the same service in one partner file (so reordering other grants moves nothing).
GrantRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}(#[1-9][0-9]{0,3})?$")]

MAX_EXCEPTION_DAYS = 365  # the hard maximum of lint.max_exception_days


class GatewayException(Strict):
    """An exception to one lint rule on one object, approved by a gateway owner, with a reason and an end.

    The object is the gateway itself (no target field), a service (`service`), a partner (`partner`),
    or one of its peers (`partner` and `peer`) or grants (`partner` and `grant`)."""

    rule: Annotated[str, StringConstraints(pattern=r"^GW[0-9]{3}$")] = Field(
        description="the rule's code, e.g. GW102 (codes only: an exception names exactly one rule)")
    partner: Identifier | None = Field(default=None, description="the partner excepted (or whose peer or grant is)")
    peer: Identifier | None = Field(default=None, description="the name of the partner's peer excepted")
    grant: GrantRef | None = Field(
        default=None, description="the partner's grant excepted: its service, with #2, #3... for a later grant of the same service")
    service: Identifier | None = Field(default=None, description="the service (services.yaml) excepted")
    reason: Text = Field(description="why the exception is acceptable, for the auditor")
    approved_by: Text = Field(description="who approved the exception: one of gateway.yaml's lint.approvers")
    expires: dt.date = Field(description="last day the exception holds (YYYY-MM-DD); at most lint.max_exception_days away")
    reference: Text | None = Field(default=None, description="the change or risk-acceptance ticket, if any")

    @model_validator(mode="after")
    def _one_target(self) -> GatewayException:
        if (self.peer or self.grant) and not self.partner:
            raise ValueError("an exception for a peer or a grant names its partner too (partner: ID)")
        if self.peer and self.grant:
            raise ValueError("an exception names one object: a peer or a grant, not both")
        if self.service and self.partner:
            raise ValueError("an exception names one object: a service or a partner, not both")
        return self

    def target(self) -> str:
        """The excepted object in words, e.g. `grant crm-api of partner acme`."""
        if self.grant:
            return f"grant {self.grant} of partner {self.partner}"
        if self.peer:
            return f"peer {self.peer} of partner {self.partner}"
        if self.partner:
            return f"partner {self.partner}"
        return f"service {self.service}" if self.service else "the gateway"
