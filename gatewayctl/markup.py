"""Escaping for the formats gatewayctl writes for people: one function per format, used everywhere.

Values in a pull-request comment or a report come partly from profiles that a partner may have
drafted (names, agreement references, justifications, approvers). Each is written so that it can
only ever read as the text it is: no link, image, mention, HTML, table break or auto-link.

- Markdown (GitHub / GitLab flavoured, read by CommonMark parsers): `markdown_text`.
- HTML: `html_text` (the same escaping Jinja's autoescape applies).
- JSON: `json.dumps` (strings are data there).
"""

from __future__ import annotations

import re

import markupsafe

# ASCII punctuation that starts Markdown syntax anywhere in a line: links and images ([ ] !), raw
# HTML and autolinks (< >), code (`), emphasis (* _ ~), table cells (|), entities (&), math ($),
# headings and issue references (#), and the escape character itself. CommonMark lets a backslash
# escape any ASCII punctuation, and the backslash does not show.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$&#!])")
# A list marker at the start of a value would open a nested list when the value starts a list item
# ("- x", "+ x", "1. x", "1) x"); quotes and headings start with characters escaped anyway.
_LEADING = re.compile(r"^(\s*[0-9]{0,9})([-+.)])(?=\s|$)")
# A zero-width space breaks what renderers turn into links after parsing, on the text itself:
# @mentions (and e-mail auto-links), #123 references, scheme:// and www. auto-links, :emoji:
# shortcodes (only names that cannot be part of an IPv6 address, so addresses copy cleanly).
ZWSP = "\u200b"
_BREAKS = re.compile(r"(?<=[@#])(?=\w)|(?<=[A-Za-z0-9]:)(?=//)|(?i:(?<=\bwww)(?=\.))"
                     r"|(?<=:)(?=[A-Za-z0-9_+-]*[G-Zg-z_+][A-Za-z0-9_+-]*:)")
_SPACE = re.compile(r"\s+")


class MarkdownSafe(str):
    """Text already escaped for Markdown: `markdown_text` passes it through unchanged."""

    __slots__ = ()


def markdown_text(value: object) -> MarkdownSafe:
    """`value` as inert inline Markdown, safe in a table cell, a list item or a heading: every run of
    whitespace (newlines, U+2028 and the like) becomes one space, Markdown punctuation is
    backslash-escaped, and mentions, references and auto-links are broken by a zero-width space."""
    if isinstance(value, MarkdownSafe):
        return value
    text = _SPACE.sub(" ", str(value))
    text = _BREAKS.sub(ZWSP, text)
    text = _SPECIAL.sub(r"\\\1", text)
    return MarkdownSafe(_LEADING.sub(r"\1\\\2", text, count=1))


def markdown_code(value: object) -> MarkdownSafe:
    """`value` as a Markdown code span (one line), fenced with more backticks than it holds; pipes are
    written `\\|` so the span cannot end a table cell (GFM removes that backslash inside tables)."""
    text = _SPACE.sub(" ", str(value)).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return MarkdownSafe(f"{fence}{pad}{text}{pad}{fence}")


def html_text(value: object) -> markupsafe.Markup:
    """`value` escaped for HTML text and quoted attribute values (& < > " ')."""
    return markupsafe.escape(value)
