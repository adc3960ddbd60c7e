"""Review output: text for a terminal, Markdown for a pull-request comment, JSON (versioned).

Every value in the Markdown comes from the profiles, which a partner may have drafted: each is
written through markup.markdown_text, so none can become a link, an image, a mention, HTML or a
table break."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import groupby
from typing import Any

from gatewayctl.markup import markdown_code
from gatewayctl.markup import markdown_text as _md
from gatewayctl.review.change import GATEWAY, Change
from gatewayctl.review.review import Review

DIFF_FORMAT = "gatewayctl-diff/1"
MARKDOWN_LIMIT = 60000


def headline(review: Review, quote: Callable[[str], str] = str) -> str:
    """One sentence; `quote` escapes the revision names for the output format."""
    base, head = quote(review.base), quote(review.head)
    if not review.changes and not review.lint_introduced:
        return f"No access change between {base} and {head}."
    partners = len({c.partner for c in review.changes} - {GATEWAY})
    gateway = " and the gateway" if any(c.partner == GATEWAY for c in review.changes) else ""
    sites = gateways(review)
    where = f" on gateway(s) {quote(', '.join(sites))}" if sites else ""
    return (f"{len(review.changes)} access change(s) for {partners} partner(s){gateway}{where} between {base} and "
            f"{head}; {review.risk_count} need a security reviewer.")


def gateways(review: Review) -> list[str]:
    """The gateways whose access changes, in an estate of several (empty for one gateway)."""
    return sorted({c.gateway for c in review.changes} - {""})


def _key(change: Change) -> tuple[str, str]:
    return change.gateway, change.partner


def _section(key: tuple[str, str]) -> str:
    site, partner = key
    return (f"[{site}] " if site else "") + ("gateway (gateway.yaml)" if partner == GATEWAY else partner)


def text(review: Review) -> str:
    lines = [headline(review)]
    for key, group in groupby(sorted(review.changes, key=_key), key=_key):
        lines.append(f"{_section(key)}:")
        for c in group:
            flag = f"  [RISK: {c.risk}]" if c.risk else ""
            lines.append(f"  {c.kind}: {c.subject}{': ' + c.detail if c.detail else ''}{flag}")
    lines += [f"lint error introduced: {e}  [RISK]" for e in review.lint_introduced]
    return "\n".join(lines)


def as_json(review: Review) -> dict[str, Any]:
    return {
        "format": DIFF_FORMAT, "base": review.base, "head": review.head,
        "summary": {"changes": len(review.changes), "risky": review.risk_count,
                    "partners": sorted({c.partner for c in review.changes} - {GATEWAY}), "gateways": gateways(review)},
        "changes": [c.__dict__ for c in review.changes],
        "lint_errors_introduced": list(review.lint_introduced),
    }


def markdown(review: Review, limit: int = MARKDOWN_LIMIT) -> str:
    """A summary line, then the details grouped by partner in a collapsible block; never over `limit`."""
    head = [f"**gatewayctl**: {headline(review, _md)}", ""]
    if not review.changes and not review.lint_introduced:
        return "\n".join(head)
    body = ["<details><summary>Access changes by partner</summary>", ""]
    if review.lint_introduced:
        body += ["#### Lint errors introduced", ""] + [f"- :warning: {_md(e)}" for e in review.lint_introduced] + [""]
    for key, group in groupby(sorted(review.changes, key=_key), key=_key):
        body += [f"#### {_md(_section(key))}", "", "| | change | what | detail |", "|---|---|---|---|"]
        body += [f"| {':warning:' if c.risk else ''} | {markdown_code(c.kind)} | {_md(c.subject)} | {_md(c.detail)}"
                 f"{' **(' + _md(c.risk) + ')**' if c.risk else ''} |" for c in group]
        body.append("")
    closing = ["</details>", ""]
    out = "\n".join(head + body + closing)
    if len(out) <= limit:
        return out
    notice = (f"\n\n**Truncated**: the full list is {len(out)} characters, over the {limit}-character comment limit. "
              "Run `gatewayctl diff --format text` for all of it.\n\n</details>\n")
    kept: list[str] = []
    size = len("\n".join(head)) + len(notice) + 1
    for line in body:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(head + kept) + notice


def render(review: Review, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(review), indent=2)
    if fmt == "markdown":
        return markdown(review)
    return text(review)
