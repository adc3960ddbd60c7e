"""The Jinja2 environment: strict, with a site override folder in front of the defaults."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache

from gatewayctl.cachedir import private_folder, read_entry, write_entry
from gatewayctl.compile.ir import AuthClient, DenyEntry, Elements, PartnerNet, SetElement

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def default_templates() -> Path:
    """The templates/ folder of the source tree, or the copy installed under share/gatewayctl."""
    for candidate in (_PACKAGE_ROOT / "templates", Path(sys.prefix) / "share" / "gatewayctl" / "templates"):
        if (candidate / "nftables").is_dir():
            return candidate
    raise FileNotFoundError("gatewayctl's templates folder is missing from this installation")


CACHE_ENV = "GATEWAYCTL_TEMPLATE_CACHE"


def template_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs, as Python keeps .pyc files: compiling the templates is
    about 20 ms of every build. Entries are keyed by the template's name and a checksum of its source,
    so an edited or site template is compiled again. The folder ($XDG_CACHE_HOME or ~/.cache, then
    gatewayctl/templates) is created 0700. Its files are loaded as code, so it is used only when
    nobody else could have put a file there (gatewayctl/cachedir.py). Else None (templates are
    compiled each time). GATEWAYCTL_TEMPLATE_CACHE=off turns it off."""
    if os.environ.get(CACHE_ENV, "").lower() in ("off", "0", "no"):
        return None
    fd = private_folder("templates")
    return None if fd is None else DescriptorBytecodeCache(fd)


class DescriptorBytecodeCache(jinja2.BytecodeCache):
    """Jinja2's file cache, with every file opened relative to the cache folder's descriptor with
    O_NOFOLLOW: an entry swapped for a link (to a file that was never a cache entry) is not loaded."""

    def __init__(self, folder_fd: int) -> None:
        self.folder_fd = folder_fd  # open for the life of the process, like the environment

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        data = read_entry(self.folder_fd, f"__jinja2_{bucket.key}.cache", 64 << 20)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        write_entry(self.folder_fd, f"__jinja2_{bucket.key}.cache", bucket.write_bytecode)


def make_environment(override: Path | None = None) -> jinja2.Environment:
    """Return the environment; templates in `override` replace the defaults of the same name."""
    folders = ([str(override)] if override else []) + [str(default_templates())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        bytecode_cache=template_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # a command reads each template once; no stat() per rendered file
    )
    env.filters.update(nft_elements=nft_elements, to_json=to_json, nginx_string=nginx_string)
    return env


@functools.lru_cache(maxsize=4096)
def nft_timeout(seconds: int) -> str:
    """Seconds in nft's duration syntax, exact and composite (30d, 5h, 212d5h18m27s): nft refuses a large
    count of a single small unit such as 113375316s ("value too large")."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "1s"


Timeouts = Callable[[dt.datetime | None], int | None]


def rounded_timeouts(at: dt.datetime) -> Timeouts:
    """For files built ahead of loading: seconds left at `at`, rounded down to whole days (whole hours on
    the last day, seconds in the last hour), so builds on the same day are byte-identical and the kernel
    never holds access open past the grant (the file is meant to be loaded on the day it was built for)."""

    @functools.lru_cache(maxsize=4096)  # elements share a few end instants
    def timeout(ends_at: dt.datetime | None) -> int | None:
        if ends_at is None:
            return None
        left = int((ends_at - at).total_seconds())
        unit = 86400 if left >= 86400 else 3600 if left >= 3600 else 1
        return max(left // unit * unit, 1)

    return timeout


def exact_timeouts(now: dt.datetime) -> Timeouts:
    """For a ruleset loaded right away (apply): the seconds left, so the kernel ends access on time."""

    @functools.lru_cache(maxsize=4096)
    def timeout(ends_at: dt.datetime | None) -> int | None:
        return None if ends_at is None else max(int((ends_at - now).total_seconds()), 1)

    return timeout


def nft_element_tail(element: SetElement, timeouts: Timeouts) -> str:
    """The timeout and comment of a set element; the comment names the grants (ids are safe identifiers)."""
    seconds = timeouts(element.ends_at)
    tail = f" timeout {nft_timeout(seconds)}" if seconds is not None else ""
    comment = " ".join(element.grants)
    if len(comment) > 120:
        comment = f"{element.grants[0]} +{len(element.grants) - 1}"
    return f'{tail} comment "{comment}"'


def element_text(element: SetElement | DenyEntry | AuthClient | PartnerNet, timeouts: Timeouts) -> str:
    """An element as written in a ruleset or an `add element` command."""
    if not isinstance(element, SetElement):  # deny map entries, address sets: no timeout, no comment
        return element.key
    return element.key + nft_element_tail(element, timeouts)


def nft_elements(elements: Elements, timeouts: Timeouts) -> str:
    """The elements of a set or map, one a line, in the ruleset's indentation: each written exactly
    as `apply` adds it (element_text). One Python loop: the ruleset holds thousands of elements."""
    return ",\n".join(["\t\t\t" + element_text(e, timeouts) for e in elements])


def nginx_string(value: str) -> str:
    """A value for inside double quotes in an nginx configuration."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def to_json(value: Any) -> str:
    """Deterministic, readable JSON."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
