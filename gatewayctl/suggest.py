"""'Did you mean ...' hints for a name that is not among the known ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The known name closest to `word`, when one is close enough to be a likely typo; else None."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or '' when none is close."""
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""
