"""The authorizer in step with the last apply: the access in force, and the profiles' requirements
re-read when an apply changes what is installed."""

from __future__ import annotations

from collections.abc import Callable

from gatewayctl.auth.decide import Authorizer
from gatewayctl.auth.inforce import AppliedFile, InForce


class Current:
    """The authorizer and the access in force, for each decision.

    applied.json is re-read whenever it changes (an apply, a rollback, a revocation). When its
    digest changes, an apply installed other profiles: they are read again (`load`), so the
    certificate requirements are those of the profiles as they were when the apply ran. Until
    then a profile change on disk that was not applied changes nothing."""

    def __init__(self, initial: Authorizer, load: Callable[[], Authorizer], applied: AppliedFile,
                 out: Callable[[str], None]) -> None:
        self.load, self.applied, self.out = load, applied, out
        self.authorizer: Authorizer | None = initial
        first = applied.current()
        self.loaded_for: str | None = first.digest if first else None
        self.problem: str | None = None  # why the profiles could not be read again

    def get(self) -> tuple[Authorizer | None, InForce | str]:
        """(the authorizer, or None when the profiles of the last apply do not load; the access in
        force, or why there is none)."""
        in_force = self.applied.current()
        if in_force is None:
            return self.authorizer, self.applied.problem or "nothing has been applied on this host"
        if in_force.digest != self.loaded_for:
            self._reload(in_force.digest)
        return self.authorizer, in_force

    def _reload(self, digest: str) -> None:
        try:
            self.authorizer = self.load()
        except Exception as exc:
            self.authorizer = None
            self.problem = f"the profiles of the last apply do not load ({type(exc).__name__}: {str(exc)[:200]})"
            self.out(f"auth error: {self.problem}; no session opens until they do")
            return  # tried again at the next request
        self.loaded_for, self.problem = digest, None
        partners = ", ".join(sorted(self.authorizer.partners)) or "none"
        self.out(f"auth: an apply changed the access in force (digest {digest[:12]}); profiles read again; "
                 f"session partners: {partners}")
