"""Colour on a terminal: the painter handed to renderers, and printing that keeps files plain.

Colour is on when stdout is a terminal, unless NO_COLOR is set (to anything but the empty string,
as no-color.org says), `--no-color` is given or the settings file says `color = false`;
`--color` (or `color = true`) keeps it on when the output is not a terminal (`| less -R`).
Text written to a file with `-o` never has colour.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from gatewayctl.cli.common import Context

# additions green, removals and errors red, changes and warnings yellow
STYLES: dict[str, dict[str, object]] = {
    "add": {"fg": "green"}, "remove": {"fg": "red"}, "change": {"fg": "yellow"},
    "error": {"fg": "red", "bold": True}, "warning": {"fg": "yellow"}, "ok": {"fg": "green"},
}


def ansi(role: str, text: str) -> str:
    """`text` in the colour of `role` (ANSI escapes); unknown roles stay plain."""
    style = STYLES.get(role)
    return click.style(text, **style) if style else text  # type: ignore[arg-type]


def echo(obj: Context, text: str) -> None:
    """Print text painted with `ansi`: colour kept or stripped as obj.color says, and when that is
    None (automatic) kept only on a terminal (click.echo strips escapes from anything else)."""
    click.echo(text, color=obj.color)


def by_line(text: str, role_of: Callable[[str], str]) -> str:
    """Each line of `text` painted in the role `role_of` gives it ('' leaves it plain)."""
    return "\n".join(ansi(role_of(line), line) for line in text.split("\n"))


def review_role(line: str) -> str:
    """The role of a line of `gatewayctl diff`'s text: '  KIND: subject...' by its kind's ending
    (added or widened: add; removed or narrowed: remove; any other change: change)."""
    if line.startswith("lint error introduced"):
        return "error"
    if not line.startswith("  ") or ":" not in line:
        return ""
    kind = line.strip().split(":", 1)[0]
    if kind.endswith(("-added", "-widened")):
        return "add"
    if kind.endswith(("-removed", "-narrowed")):
        return "remove"
    return "change"


SEVERITY_ROLE = {"error": "error", "warning": "warning"}


def by_severity(text: str, severities: list[str]) -> str:
    """Lint's text output (one line per finding, in the order of `severities`, then the summary)
    with each finding's line painted by its severity: errors red, warnings yellow."""
    lines = text.split("\n")
    if len(lines) != len(severities) + 1:  # not the shape expected: left plain rather than mispainted
        return text
    return "\n".join([*(ansi(SEVERITY_ROLE.get(s, ""), line) for s, line in zip(severities, lines, strict=False)),
                      lines[-1]])
