"""Defaults for the group options from a settings file: gatewayctl.toml, or [tool.gatewayctl] in pyproject.toml.

Where it is found: the current directory, then each parent in turn, up to and including the first
folder that holds `.git` (the repository's root) or the filesystem's root. The first folder with
a gatewayctl.toml, or with a pyproject.toml that has a [tool.gatewayctl] table, wins; in one folder
gatewayctl.toml comes first. A relative `profiles` is relative to that file's folder.

Precedence, for every setting: a flag (before or after the command) > the environment
(GATEWAYCTL_PROFILES, GATEWAYCTL_GATEWAY, GATEWAYCTL_DEBUG, NO_COLOR) > the file > the built-in
default. An unknown key or a value of the wrong kind is an error naming the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from gatewayctl.errors import display_path, shown
from gatewayctl.suggest import did_you_mean

if TYPE_CHECKING:
    from gatewayctl.cli.common import Context

CONFIG_FILE = "gatewayctl.toml"
PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class Settings:
    """What a settings file says; None (or empty) where it says nothing. `path`: the file read, if any."""

    path: Path | None = None
    profiles: Path | None = None
    gateways: tuple[str, ...] = ()
    verbose: int | None = None
    quiet: bool | None = None
    debug: bool | None = None
    color: bool | None = None  # true: colour even when not a terminal; false: never


class ConfigError(Exception):
    """A settings file that cannot be used; str() is `file:line: message`."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        where = f"{display_path(path)}:{line}" if line else display_path(path)
        super().__init__(f"{where}: {message}")


def find(start: Path) -> tuple[Path, str, tuple[str, ...]] | None:
    """The settings file that applies in `start`: (file, its text, the table holding the settings:
    () for gatewayctl.toml, ("tool", "gatewayctl") for pyproject.toml); None when there is none."""
    for folder in (start, *start.parents):
        own = folder / CONFIG_FILE
        if own.is_file():
            return own, _read(own), ()
        pyproject = folder / PYPROJECT
        if pyproject.is_file():
            text = _read(pyproject)
            if _has_table(text):
                return pyproject, text, ("tool", "gatewayctl")
        if (folder / ".git").exists():
            return None  # settings above the repository are someone else's
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, 0, "is not UTF-8 text") from None


def _has_table(text: str) -> bool:
    """Whether a pyproject.toml has a [tool.gatewayctl] table (a file that does not parse counts when
    it seems to have one: loading then says what is wrong with it)."""
    import tomllib  # here: 3 ms that a folder without a settings file does not pay

    try:
        tool = tomllib.loads(text).get("tool")
    except tomllib.TOMLDecodeError:
        return re.search(r"tool\s*\.\s*gatewayctl", text) is not None
    return isinstance(tool, dict) and "gatewayctl" in tool


def load(start: Path) -> Settings:
    """The settings that apply in `start` (none: an empty Settings); ConfigError for a bad file."""
    found = find(start)
    if found is None:
        return Settings()
    path, text, table = found
    import tomllib

    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(path, int(line.group(1)) if line else 0, f"not valid TOML: {exc}") from None
    for part in table:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        raise ConfigError(path, _line_of(text, table[:-1], table[-1]), f"[{'.'.join(table)}] must be a table")
    return _settings(path, text, table, data)


def _settings(path: Path, text: str, table: tuple[str, ...], data: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {}
    for key, value in data.items():
        line = _line_of(text, table, key)
        if key not in KEYS:
            raise ConfigError(path, line, f"unknown setting {shown(key, 40)}{did_you_mean(key, KEYS)}; "
                                          f"known: {', '.join(KEYS)}")
        field, check = KEYS[key]
        try:
            values[field] = check(value)
        except ValueError as exc:
            raise ConfigError(path, line, f"{key}: {exc}; found {shown(value)}") from None
    if "profiles" in values:
        values["profiles"] = path.parent / values["profiles"]  # where the file is, not where one stands
    return Settings(path=path, **values)


def _text(value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a folder name (a non-empty string)")
    return Path(value)


def _names(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError("must be a gateway name or a list of gateway names")
    return tuple(dict.fromkeys(items))


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        raise ValueError("must be a whole number from 0 to 3 (as many as -v flags)")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


# key in the file -> (Settings field, check and conversion)
KEYS: dict[str, tuple[str, Callable[[object], Any]]] = {
    "profiles": ("profiles", _text), "gateway": ("gateways", _names), "verbose": ("verbose", _count),
    "quiet": ("quiet", _flag), "debug": ("debug", _flag), "color": ("color", _flag),
}


def _line_of(text: str, table: tuple[str, ...], key: str) -> int:
    """The 1-based line where `key` of `table` is written (as `key = ...` under the table's header, or
    as the header of its own sub-table); the table's header line when not found; 0 when neither is."""
    current: tuple[str, ...] = ()
    header = 0
    for number, line in enumerate(text.splitlines(), 1):
        heading = re.match(r"\s*\[(?!\[)\s*([^\]]+?)\s*\]", line)
        if heading:
            current = tuple(_unquote(p) for p in heading.group(1).split("."))
            if current == table:
                header = number
            if current == (*table, key):
                return number
            continue
        assigned = re.match(r"\s*([A-Za-z0-9_.\"' -]+?)\s*=", line)
        if assigned:
            path = (*current, *(_unquote(p) for p in assigned.group(1).split(".")))
            if path[: len(table) + 1] == (*table, key):
                return number
    return header


def _unquote(part: str) -> str:
    return part.strip().strip("\"'")


NO_COLOR = "NO_COLOR"
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def group_context(ctx: click.Context) -> Context:
    """The Context every command shares, from the group's options: each from its flag or environment
    variable, else the settings file, else the built-in default. A bad settings file: the error on
    stderr and exit 2."""
    from gatewayctl.cli.common import QUIET_FLAG, Context  # the models: not imported before the parse helper starts

    try:
        settings = load(Path.cwd())
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    params = ctx.params

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) in _GIVEN

    profiles = params["profiles"] if given("profiles") or settings.profiles is None else settings.profiles
    gateways = params["gateway"] if given("gateway") else settings.gateways
    verbose = params["verbose"] if given("verbose") else settings.verbose or 0
    # a -v flag outranks the file's quiet, as any flag outranks the file
    quiet = params["quiet"] if given("quiet") else (not given("verbose") and bool(settings.quiet))
    debug = params["debug"] if given("debug") else bool(settings.debug)
    if params["quiet"]:
        ctx.meta[QUIET_FLAG] = True
    return Context(profiles=profiles, verbosity=-1 if quiet else verbose, gateways=list(dict.fromkeys(gateways)),
                   debug=debug, color=params["color"] if given("color") else _color(settings.color),
                   gateways_default=ctx.get_parameter_source("gateway") != ParameterSource.COMMANDLINE)


def _color(from_file: bool | None) -> bool | None:
    """NO_COLOR (any value but empty, as no-color.org says) over the file's `color`; None: automatic."""
    if os.environ.get(NO_COLOR):
        return False
    return from_file
