"""Colour for text meant for a terminal, without the stages knowing about terminals.

A renderer takes a `Paint` and calls it with a role and a piece of text; the default, `plain`,
returns the text unchanged (files, pipes, NO_COLOR). The CLI passes one that adds ANSI colour
(gatewayctl/cli/colour.py). Roles: "add", "remove", "change", "error", "warning", "ok".
"""

from __future__ import annotations

from collections.abc import Callable

Paint = Callable[[str, str], str]


def plain(_role: str, text: str) -> str:
    """The text as it is: no colour."""
    return text
