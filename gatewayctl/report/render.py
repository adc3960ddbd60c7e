"""Render the evaluated report document: HTML, Markdown, JSON, JUnit XML, Prometheus textfile.

Every format comes from a template in templates/report/ (JSON is the document itself). The
pictures of the HTML (access matrix, traffic, timeline) are computed here as plain numbers and drawn
by the template as inline SVG and HTML: the page has no external resource.

Escaping is not left to each template (a site may override them): the HTML is rendered with
autoescape on, and every `{{ value }}` of the Markdown passes through markup.markdown_text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jinja2

from gatewayctl.markup import MarkdownSafe, markdown_code, markdown_text

Doc = dict[str, Any]
PALETTE = ["#4caf50", "#8bc34a", "#ffc107", "#ff9800", "#f44336", "#9c27b0", "#795548", "#607d8b"]
TIMELINE_DAYS = 182
SHOWN = 20  # evidence items of a check shown in HTML, Markdown and JUnit; the rest is counted


def human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def count(value: int) -> str:
    """An integer with thousands separators: 4,980."""
    return f"{value:,}"


def _colours(doc: Doc) -> dict[str, str]:
    classes = doc["gateway"]["classifications"]
    if len(classes) <= 1:
        return {c: PALETTE[0] for c in classes}
    step = (len(PALETTE[:5]) - 1) / (len(classes) - 1)
    return {c: PALETTE[round(i * step)] for i, c in enumerate(classes)}


def letters(classes: list[str]) -> dict[str, str]:
    """Each classification's mark in the matrix: the shortest prefix no other classification shares,
    first letter upper case (public P, internal I, confidential C, restricted R)."""
    marks = {}
    for name in classes:
        size = next((n for n in range(1, len(name) + 1)
                     if not any(o != name and o.lower().startswith(name[:n].lower()) for o in classes)), len(name))
        marks[name] = name[:size].capitalize()
    return marks


def ink(colour: str) -> str:
    """Black or white, whichever reads better on the background `colour` (#rrggbb)."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#fff"


def legend(doc: Doc) -> list[dict[str, str]]:
    """Per classification, least sensitive first: its name, mark, background and text colour."""
    colours, marks = _colours(doc), letters(doc["gateway"]["classifications"])
    return [{"name": c, "letter": marks[c], "colour": colours[c], "ink": ink(colours[c])} for c in colours]


def matrix(doc: Doc) -> dict[str, Any]:
    """Partners by services: each cell the grant's classification (with its mark), expiring and session marks."""
    services = sorted(doc["services"])
    marks = {c["name"]: c for c in legend(doc)}
    rows = []
    for p in doc["partners"]:
        cells: dict[str, dict[str, Any]] = {}
        for g in p["grants"]:
            if not g["in_force"]:
                continue
            mark = marks[g["classification"]]
            cell = cells.setdefault(g["service"], {"classification": g["classification"], "expiring": False,
                                                   "gated": g["gated"], "ends": g["ends_at"], "letter": mark["letter"],
                                                   "colour": mark["colour"], "ink": mark["ink"]})
            cell["expiring"] = cell["expiring"] or g["expiring"]
        rows.append({"id": p["id"], "name": p["name"], "stage": p["stage"], "cells": [cells.get(s) for s in services]})
    return {"services": services, "rows": rows}


def traffic(doc: Doc, top: int = 25) -> dict[str, Any]:
    """Accepted bytes and denied packets per partner: the busiest `top` as bars, widths in percent."""
    if not doc["live"]["available"]:
        return {"available": False, "bars": [], "others": 0}
    rows = [(p["id"], (p["accepted"] or {}).get("bytes", 0), (p["accepted"] or {}).get("packets", 0),
             (p["denied"] or {}).get("packets", 0)) for p in doc["partners"]]
    rows.sort(key=lambda r: (-r[1], -r[3], r[0]))
    shown = rows[:top]
    most_bytes = max([r[1] for r in shown] + [1])
    most_denied = max([r[3] for r in shown] + [1])
    bars = [{"partner": pid, "bytes": b, "packets": pk, "denied": d, "width": round(100 * b / most_bytes, 1),
             "denied_width": round(100 * d / most_denied, 1)} for pid, b, pk, d in shown]
    return {"available": True, "bars": bars, "others": max(0, len(rows) - top)}


def timeline(doc: Doc) -> dict[str, Any]:
    """Grant ends, agreement ends and review dates in the next half year, counted per week."""
    start = dt.date.fromisoformat(doc["generated_at"][:10])
    weeks: list[dict[str, Any]] = [{"start": (start + dt.timedelta(days=7 * i)).isoformat(), "grant": 0, "agreement": 0,
                                    "review": 0} for i in range(TIMELINE_DAYS // 7)]
    items = []

    def put(kind: str, day: str | None, partner: str, what: str) -> None:
        if not day:
            return
        offset = (dt.date.fromisoformat(day[:10]) - start).days
        if 0 <= offset < len(weeks) * 7:
            weeks[offset // 7][kind] += 1
            items.append({"date": day[:10], "kind": kind, "partner": partner, "what": what})

    for p in doc["partners"]:
        for g in p["grants"]:
            if g["in_force"] and g["expires"]:
                put("grant", g["expires"], p["id"], f"grant {g['service']} ends")
        put("agreement", p["agreement"]["expires"], p["id"], f"agreement {p['agreement']['reference']} ends")
        put("review", p["review_by"], p["id"], "profile review due")
    items.sort(key=lambda i: (i["date"], i["partner"], i["kind"]))
    tallest = max([w["grant"] + w["agreement"] + w["review"] for w in weeks] + [1])
    return {"weeks": weeks, "tallest": tallest, "items": items, "days": TIMELINE_DAYS}


def md(value: object) -> MarkdownSafe:
    """Text for a Markdown table cell, list item or heading: inert (markup.markdown_text)."""
    return markdown_text(value)


def environment(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(human_bytes=human_bytes, md=md, md_code=markdown_code, count=count)
    return env


def escaping(env: jinja2.Environment, fmt: str) -> jinja2.Environment:
    """The environment a format is rendered in: HTML with autoescape, Markdown with every output value
    escaped (`finalize`). Both change how templates compile, so neither shares compiled templates
    with the plain environment (no template or bytecode cache)."""
    if fmt == "html":
        return env.overlay(autoescape=True, cache_size=0, bytecode_cache=None)
    if fmt == "markdown":
        return env.overlay(finalize=markdown_text, cache_size=0, bytecode_cache=None)
    return env


def render(doc: Doc, fmt: str, env: jinja2.Environment) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    environment(env)
    template = {"html": "report/report.html.j2", "markdown": "report/report.md.j2", "junit": "report/junit.xml.j2",
                "prometheus": "report/metrics.prom.j2"}[fmt]
    epoch = int(dt.datetime.strptime(doc["generated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
    context: dict[str, Any] = {"doc": doc, "epoch": epoch, "shown": SHOWN}
    if fmt in ("html", "markdown"):
        context.update(matrix=matrix(doc), traffic=traffic(doc), timeline=timeline(doc), colours=_colours(doc),
                       legend=legend(doc))
    return escaping(env, fmt).get_template(template).render(**context)
