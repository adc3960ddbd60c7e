"""The field names a model accepts at a place in a file: what an unknown field's hint is chosen from."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel


def known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The names accepted in the mapping at `loc` (a validation error's location without its last
    part) inside `model`, as a file spells them; [] when `loc` does not lead to a model."""
    kinds: list[Any] = [model]
    for part in loc:
        inner = [t for kind in kinds for t in _inside(kind, part)]
        kinds = inner or kinds  # a part no type knows (a union's tag, a validator's name) leads nowhere new
    return sorted({field.alias or name for kind in kinds for m in _alternatives(kind) if _is_model(m)
                   for name, field in m.model_fields.items()})


def _inside(kind: Any, part: Any) -> Iterator[Any]:
    """The types found at `part` of a value of type `kind` (a field of a model, an item of a list,
    a value of a mapping)."""
    for alt in _alternatives(kind):
        origin = typing.get_origin(alt)
        args = typing.get_args(alt)
        if _is_model(alt) and isinstance(part, str):
            field = alt.model_fields.get(part) or next((f for f in alt.model_fields.values() if f.alias == part), None)
            if field is not None:
                yield field.annotation
        elif isinstance(part, int) and isinstance(origin, type) and issubclass(origin, Sequence) and args:
            yield args[0]
        elif isinstance(part, str) and isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
            yield args[1]


def _alternatives(kind: Any) -> Iterator[Any]:
    """`kind` without Annotated and Optional: each type of a union, or `kind` itself."""
    if typing.get_origin(kind) is typing.Annotated:
        yield from _alternatives(typing.get_args(kind)[0])
    elif typing.get_origin(kind) in (typing.Union, types.UnionType):
        for arg in typing.get_args(kind):
            yield from _alternatives(arg)
    elif kind is not type(None):
        yield kind


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)
