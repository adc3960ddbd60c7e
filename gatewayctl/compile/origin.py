"""Where a line of a rendered ruleset comes from: the set element on it, the grants behind that
element, and the lines of those grants in the profiles.

nft reports a refused ruleset as `FILE:LINE:COL: Error: ...` about the generated text; a person
needs the grant they wrote. `explain_refusal` adds that to nft's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gatewayctl.compile.intervals import meet
from gatewayctl.compile.ir import CompiledPolicy, NftTableIR, SetElement
from gatewayctl.loader.profiles import Estate

Locate = Callable[[str], str | None]  # grant id -> "path:line" in the profiles, None when unknown

_POSITION = re.compile(r":(\d+):(\d+)(?:-(\d+))?: Error:")  # nft's FILE:LINE:FIRST[-LAST column]: Error:
_SET = re.compile(r"^\t(?:set|map) (\S+) \{")
_ADD = re.compile(r"^add element \S+ \S+ (\S+) \{")
_TAIL = re.compile(r'( counter packets \d+ bytes \d+)?( timeout \S+)?( expires \S+)?( comment "[^"]*")?,?$')
_MAX_OTHERS = 3


@dataclass(frozen=True, slots=True)
class Origin:
    """The grant set element on one line of a rendered ruleset, and the elements of its set it overlaps."""

    line: int
    set_name: str
    element: SetElement
    overlapping: tuple[SetElement, ...]


def element_at(ruleset: str, line: int, table: NftTableIR, columns: tuple[int, int] | None = None) -> Origin | None:
    """The grant element written on `line` (1-based) of `ruleset`, rendered from `table`: an element
    line of a set declaration, or, when nft's `columns` (1-based, inclusive) are given, the element
    they mark, also inside an `add element` command. None when that holds no grant element (a rule,
    a declaration, a deny entry)."""
    lines = ruleset.splitlines()
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    command = _ADD.match(text)
    if command is not None:
        name: str | None = command.group(1)
    elif text.startswith("\t\t\t"):
        name = next((m.group(1) for above in reversed(lines[: line - 1]) if (m := _SET.match(above))), None)
    else:
        return None
    keys = [text[columns[0] - 1: columns[1]].strip()] if columns else []
    if command is None:
        keys.append(_TAIL.sub("", text.strip()))  # the whole line, without timeout and comment
    elements = [e for e in table.by_set().get(name or "", ()) if isinstance(e, SetElement)]
    element = next((e for key in keys for e in elements if e.key == key), None)
    if name is None or element is None:
        return None
    overlapping = tuple(e for e in elements if e is not element and meet(e, element))
    return Origin(line, name, element, overlapping)


def grant_locator(estate: Estate, policy: CompiledPolicy) -> Locate:
    """A function from a grant id to "path:line" of that grant in its partner file. Lines are looked
    up only when asked for (finding one re-reads the file's YAML tree)."""
    docs = {loaded.model.id: loaded.doc for loaded in estate.partners}
    where = {g.id: (g.partner, g.index) for p in policy.partners for g in p.grants}

    def locate(grant: str) -> str | None:
        found = where.get(grant)
        doc = docs.get(found[0]) if found else None
        if found is None or doc is None:
            return None
        return f"{doc.shown_path}:{doc.line_of(('grants', found[1]))}"

    return locate


def explain_refusal(message: str, ruleset: str, table: NftTableIR, locate: Locate | None = None) -> str:
    """nft's `message` about `ruleset` (rendered from `table`), followed by one line for each grant
    element it points at: the element, its set, the grants behind it and where they are written,
    and the elements of the same set it overlaps, with theirs. The message as it was when it points
    at no grant element."""
    notes = []
    spots = [(int(m[1]), int(m[2]), int(m[3] or m[2])) for m in _POSITION.finditer(message)]
    for line, first, last in dict.fromkeys(spots):
        origin = element_at(ruleset, line, table, (first, last))
        if origin is not None:
            notes.append(_describe(origin, locate))
    return "\n".join([message, *notes])


def _describe(origin: Origin, locate: Locate | None) -> str:
    text = (f"ruleset line {origin.line} is element {origin.element.key!r} of set {origin.set_name}, "
            f"from {_grants(origin.element, locate)}")
    if origin.overlapping:
        shown = [f"{e.key!r} from {_grants(e, locate)}" for e in origin.overlapping[:_MAX_OTHERS]]
        more = len(origin.overlapping) - _MAX_OTHERS
        text += "; it overlaps " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return text


def _grants(element: SetElement, locate: Locate | None) -> str:
    named = []
    for grant in element.grants:
        where = locate(grant) if locate is not None else None
        named.append(f"grant {grant} ({where})" if where else f"grant {grant}")
    return ", ".join(named) or "no grant"
