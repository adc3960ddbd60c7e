"""Strict YAML 1.2 reading with line numbers.

libyaml (through PyYAML's C parser) builds the node tree quickly and keeps the
position of every node; scalars are then resolved here with the YAML 1.2 core
schema, so `NO` and `22:22` stay strings. Duplicate keys, aliases and
non-standard tags are errors, because a policy file must mean exactly what it
says.
"""

from __future__ import annotations

import errno
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml import MappingNode, Node, ScalarNode, SequenceNode
from yaml.cyaml import CParser  # type: ignore[attr-defined]

from gatewayctl.errors import ProfileError, ProfileErrors, shown
from gatewayctl.loader import parsecache
from gatewayctl.loader.safefs import MAX_FILE_BYTES, read_regular

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "Document", "YamlError", "read_document"]

# Profiles nest a handful of levels. Both libyaml's composer (C, recursive: a 200,000-level file
# overflowed the C stack) and the constructor here (Python, recursive) are only ever given text
# checked to nest no deeper than this.
MAX_DEPTH = 64
_PLAIN = "tag:gatewayctl:plain"
_TAG = "tag:yaml.org,2002:"

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


_STR, _SEQ, _MAP = _TAG + "str", _TAG + "seq", _TAG + "map"


class _Resolver(yaml.resolver.BaseResolver):
    """Tags every plain scalar as 'plain' so that the core schema is applied here.

    libyaml calls `resolve` only for nodes without an explicit tag."""

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP


class _Loader(CParser, _Resolver):
    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        _Resolver.__init__(self)
        # libyaml calls these around every node for path-based resolvers, which are not used here:
        # C built-ins that do nothing useful cost a fraction of the Python methods (a tenth of parsing)
        self.descend_resolver = {}.get  # type: ignore[method-assign,assignment]  # (parent, index) -> ignored
        self.ascend_resolver = tuple  # type: ignore[method-assign,assignment]  # () -> ignored


class YamlError(Exception):
    """A file that is not acceptable YAML; carries the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Document:
    """A parsed file: plain Python data, and its text for line look-ups.

    The node tree is not kept: it costs memory and garbage-collector time at thousands of
    files, and lines are only needed for messages, so it is rebuilt on demand."""

    path: Path
    shown_path: str
    data: Any
    text: str

    def source_loc(self, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
        """Where `loc` of the model is in the file: the same place here; a view of one gateway of
        several (loader/fleet.py) maps its locations to the file's."""
        return loc

    def line_of(self, loc: tuple[int | str, ...]) -> int:
        """Return the 1-based line of the node at `loc`, or of its nearest parent."""
        node = _tree(self.text)
        for part in self.source_loc(loc):
            child = _child(node, part)
            if child is None:
                break
            node = child
        return int(node.start_mark.line) + 1

    def error(self, loc: tuple[int | str, ...], message: str, code: str = "") -> ProfileError:
        return ProfileError(self.shown_path, self.line_of(loc), message, code)


def shown_text(text: str, limit: int = 120) -> str:
    """A message from the parser, shortened: it can quote the file (whose lines are not ours to print)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _child(node: Node, part: int | str) -> Node | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def read_document(path: Path, shown_path: str, root: Path | None = None) -> Document:
    """Read and parse one YAML file; raises ProfileErrors (with the line) on failure.

    Only a regular file of at most MAX_FILE_BYTES is read, never through a link: with `root` (the
    profiles folder), no component below `root` may be a link either (see safefs)."""
    try:
        raw = read_regular(path, MAX_FILE_BYTES, root)
    except OSError as exc:
        message = exc.strerror if exc.errno == errno.EPERM else f"cannot read file: {exc.strerror}"
        raise ProfileErrors([ProfileError(shown_path, 0, message or "cannot read file")]) from None
    text = _decode(raw, shown_path)
    data = parsecache.lookup(text)
    if data is parsecache.MISS:
        try:
            data = _Constructor().build(_compose(text))
        except YamlError as exc:
            raise ProfileErrors([ProfileError(shown_path, exc.line, exc.message)]) from None
        parsecache.remember(text, data)
    return Document(path, shown_path, data, text)


@functools.lru_cache(maxsize=8)
def _tree(text: str) -> Node:
    return _compose(text)


def _decode(raw: bytes, shown_path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 4]
        raise ProfileErrors([ProfileError(shown_path, line, f"file is not valid UTF-8: byte {bad!r} at offset {exc.start}")]) from None


def _compose(text: str) -> Node:
    if _may_nest_too_deep(text):
        _check_depth(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlError(line, f"YAML syntax error: {shown_text(str(exc.problem or exc.context))}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, f"YAML error: {shown_text(str(exc))}") from None
    finally:
        loader.dispose()
    if root is None:
        raise YamlError(1, "file is empty; expected a mapping of settings")
    return root


def _may_nest_too_deep(text: str) -> bool:
    """False when `text` cannot nest deeper than MAX_DEPTH, by a bound cheap enough for every file.

    A flow collection opens with { or [ (and `[a: b]` holds a mapping: two levels for a [); a block
    collection needs a deeper start column than
    its parent, or an indicator (- ? :) before its content on its line, and at most two levels (a
    mapping and a sequence as its value) share one column. So depth <= brackets + 2 * (longest run
    of spaces and indicators at a line start + 1). Over-estimates (brackets in strings, lines of
    block scalars) only mean the exact check runs."""
    room = MAX_DEPTH - 2 * text.count("[") - text.count("{")
    if room < 2:
        return True
    first_line, other_lines = _line_start_runs(room // 2)
    return first_line.match(text) is not None or other_lines.search(text) is not None


@functools.lru_cache(maxsize=64)
def _line_start_runs(length: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Runs of at least `length` spaces and indicators at the start of the first line, of any other
    line (found after a newline rather than by ^ with MULTILINE: re then skips to each newline, 4x faster)."""
    run = rf"[ \t?:-]{{{length},}}"
    return re.compile(run), re.compile("\n" + run)


def _check_depth(text: str) -> None:
    """Raise YamlError at the first collection nested deeper than MAX_DEPTH. libyaml's event parser
    keeps its own stacks (no recursion), so this is safe at any depth."""
    parser = _Loader(text)
    depth = 0
    try:
        while (event := parser.get_event()) is not None:
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark is not None else 0
                    raise YamlError(line, f"nesting is deeper than {MAX_DEPTH} levels; "
                                    "profile files nest a few levels at most")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc.problem):  # newer libyaml (PyYAML >= 6.0.3 wheels) stops deep input itself
            mark = exc.problem_mark or exc.context_mark
            raise YamlError(mark.line + 1 if mark is not None else 0, f"nesting is deeper than {MAX_DEPTH} levels; "
                            "profile files nest a few levels at most") from None
        return  # not YAML: composing reports it, at a depth this check has seen
    except yaml.YAMLError:
        return
    finally:
        parser.dispose()


class _Constructor:
    """Turns nodes into dict/list/str/int/float/bool/None under the YAML 1.2 core schema."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def build(self, node: Node) -> Any:
        seen = self._seen
        if id(node) in seen:
            raise YamlError(_line(node), "anchors and aliases (*name) are not supported in profiles; write the value out")
        seen.add(id(node))
        kind = type(node)
        if kind is ScalarNode:
            value: str = node.value
            if node.tag == _PLAIN and value[:1].isalpha() and value[0] not in "nNtTfF":
                return value  # the common case: plain text that can be nothing else
            return _scalar(node)
        if kind is MappingNode:
            return self._mapping(node)
        _check_tag(node, "seq")
        return [self.build(item) for item in node.value]

    def _mapping(self, node: Node) -> dict[str, Any]:
        _check_tag(node, "map")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if type(key) is not str:
                raise YamlError(_line(key_node), f"keys must be text, found {shown(key)}")
            if key in result:
                first = next(k for k, _ in node.value if k.value == key)
                raise YamlError(_line(key_node), f"duplicate key {shown(key)} (first defined on line {_line(first)})")
            result[key] = self.build(value_node)
        return result


def _check_tag(node: Node, kind: str) -> None:
    if node.tag != _TAG + kind:
        raise YamlError(_line(node), f"YAML tag {shown(node.tag)} is not supported in profiles")


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: Node) -> Any:
    value: str = node.value
    tag: str = node.tag
    if tag == _PLAIN:
        return _core(value)
    if tag == _TAG + "str":
        return value
    expected: dict[str, type] = {"int": int, "bool": bool, "null": type(None), "float": float}
    kind = tag.removeprefix(_TAG)
    if kind in expected:
        resolved = _core(value)
        if type(resolved) is expected[kind]:
            return resolved
        if kind == "float" and type(resolved) is int:
            return float(resolved)
        raise YamlError(_line(node), f"value {shown(value)} is not a valid !!{kind}")
    raise YamlError(_line(node), f"YAML tag {shown(tag)} is not supported in profiles")


def _core(value: str) -> Any:
    """Resolve a plain scalar with the YAML 1.2 core schema."""
    first = value[:1]
    if first.isalpha() and first not in "nNtTfF":
        return value  # the common case: text that can be nothing else
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT10.match(value):
        return int(value, 10)
    if _INT8.match(value):
        return int(value[2:], 8)
    if _INT16.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.match(value):
        return math.nan
    return value
