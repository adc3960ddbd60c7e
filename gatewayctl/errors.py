"""Error records that point into the user's files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class ProfileError:
    """One problem in one input file; `line` is 1-based, 0 when unknown."""

    path: str
    line: int
    message: str
    code: str = ""  # the lint rule that reports the same problem, when there is one

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class ProfileErrors(Exception):
    """Raised once, after every problem in every file has been collected."""

    def __init__(self, errors: list[ProfileError]) -> None:
        self.errors = sorted(set(errors))
        super().__init__(f"{len(self.errors)} problem(s) in the profiles")


def display_path(path: Path, base: Path | None = None) -> str:
    """Return `path` relative to the working directory when possible."""
    for root in (Path.cwd(), base):
        if root is None:
            continue
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


def shown(value: object, limit: int = 60) -> str:
    """Render a bad value for an error message: repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
